package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/mlflow"
	"github.com/whet-ai/whet/tracking/mlflowfile"
)

func init() {
	register(&Command{Name: "mlflow-sync", Short: "copy a local MLflow run (mlruns/<exp>/<run>) or a run's undelivered spool to an MLflow server", Run: runMLflowSync})
}

const mlflowSyncSynopsis = `(--run DIR/mlruns/<experiment id>/<run id> | --spool DIR) [flags]

--run copies a run of a local MLflow tracking directory (what whet writes
to ./mlruns when no tracking URI is set, or any MLflow file store) to a
tracking server: a new run with the local run's name, start time, params,
tags, every metric point with its timestamp and step, the files of its
artifact directory, and its status and end time. Requests stay within
MLflow's limits (1000 metrics, 100 params, 100 tags, 1 MB a request). The
server's run is tagged whet.source.run_id, and a run already copied is
refused unless --force is given.

--spool delivers what a training run could not deliver before it ended
(its error names the directory), exactly once.

The server is --tracking-uri, else MLFLOW_TRACKING_URI (for --spool, the
one the run used); the experiment is --experiment, else
MLFLOW_EXPERIMENT_NAME, else the local run's experiment. Credentials come
from MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD.`

func runMLflowSync(env *Env, args []string) error {
	fs := newFlags(env, "mlflow-sync", mlflowSyncSynopsis)
	runDir := fs.String("run", "", "local run directory, DIR/mlruns/<experiment id>/<run id>")
	spoolDir := fs.String("spool", "", "spool directory left by a run whose delivery did not finish")
	uri := fs.String("tracking-uri", "", "MLflow server, http(s)://HOST[:PORT] (default: $MLFLOW_TRACKING_URI)")
	experiment := fs.String("experiment", "", "experiment name on the server (default: $MLFLOW_EXPERIMENT_NAME, else the local run's)")
	force := fs.Bool("force", false, "copy the run even if the server already holds a copy of it")
	status := fs.String("status", "", "with --spool: finish the run with this status (FINISHED, FAILED, KILLED) if the spool does not hold its end")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to keep delivering before giving up (what is left stays in a spool)")
	spoolParent := fs.String("spool-dir", "", "with --run: where the copy's spool is kept while it is delivered (default: the user cache directory)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case (*runDir == "") == (*spoolDir == ""):
		return fmt.Errorf("%w: give exactly one of --run and --spool", ErrUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	case *timeout <= 0:
		return fmt.Errorf("%w: --timeout %s: want a positive duration", ErrUsage, *timeout)
	case *status != "" && *spoolDir == "":
		return fmt.Errorf("%w: --status goes with --spool (a --run copy takes the local run's status)", ErrUsage)
	}
	var st tracking.Status
	if *status != "" {
		var err error
		if st, err = tracking.ParseStatus(*status); err != nil {
			return fmt.Errorf("%w: --status: %v", ErrUsage, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := mlflow.Config{
		TrackingURI: *uri, Experiment: *experiment, SpoolDir: *spoolParent,
		FlushTimeout: *timeout,
		Logf: func(format string, a ...any) {
			fmt.Fprintf(env.Stderr, "whet mlflow-sync: "+format+"\n", a...)
		},
	}
	if *spoolDir != "" {
		sum, err := mlflow.DeliverSpool(ctx, *spoolDir, cfg, st, *timeout)
		if len(sum.Sinks) > 0 {
			fmt.Fprintln(env.Stdout, sum)
		}
		return err
	}
	rd, err := mlflowfile.ReadRun(*runDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "local run %s (%s): %d params, %d tags, %d metric points, status %s\n",
		rd.RunID, rd.RunName, len(rd.Params), len(rd.Tags), len(rd.Metrics), rd.Status)
	if rd.Status == "RUNNING" || rd.Status == "SCHEDULED" {
		fmt.Fprintf(env.Stderr, "whet mlflow-sync: the local run is %s; the copy stays RUNNING\n", rd.Status)
	}
	t, err := mlflow.Replay(ctx, rd, cfg, mlflow.ReplayOptions{Force: *force, Timeout: *timeout})
	if t != nil {
		fmt.Fprintln(env.Stdout, t.Summary())
	}
	if err != nil {
		return err
	}
	if t == nil {
		return errors.New("mlflow-sync: no run was created")
	}
	return nil
}
