package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/mlflowfile"
)

// Open returns the tracker that cfg's tracking URI (or
// MLFLOW_TRACKING_URI) names: a server (New) for http:// and https://, a
// local file store (mlflowfile) for a path or a file: URI, and the file
// store ./mlruns when no URI is set, which is MLflow's own default for a
// client.
func Open(ctx context.Context, cfg Config) (tracking.Tracker, error) {
	c := cfg.fromEnv()
	root, isFile, err := fileRoot(c.TrackingURI)
	if err != nil {
		return nil, err
	}
	if !isFile {
		return New(ctx, cfg)
	}
	if c.ExperimentID != "" && c.Experiment == "" {
		return nil, fmt.Errorf("mlflow file store %s: %s is not supported there; name the experiment (%s)", root, EnvExperimentID, EnvExperimentName)
	}
	return mlflowfile.Create(mlflowfile.Options{
		Root: root, Experiment: c.Experiment, RunID: c.RunID, RunName: c.RunName, Tags: c.Tags, Now: c.Now,
	})
}

// fileRoot reads a tracking URI that names a local directory.
func fileRoot(uri string) (root string, isFile bool, err error) {
	if uri == "" {
		return mlflowfile.DefaultRoot, true, nil
	}
	if uri == "databricks" {
		return "", false, fmt.Errorf("mlflow: tracking URI %q: Databricks is not supported; want http(s):// or a local path", uri)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // a path (or a Windows drive letter)
		return uri, true, nil
	}
	switch u.Scheme {
	case "http", "https":
		return "", false, nil
	case "file":
		if u.Opaque != "" { // file:relative/path
			return filepath.FromSlash(u.Opaque), true, nil
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", false, fmt.Errorf("mlflow: tracking URI %q: a file: URI must name a local path", uri)
		}
		p, err := url.PathUnescape(u.Path)
		if err != nil {
			return "", false, fmt.Errorf("mlflow: tracking URI %q: %w", uri, err)
		}
		return filepath.FromSlash(p), true, nil
	default:
		return "", false, fmt.Errorf("mlflow: tracking URI %q: scheme %s is not supported; want http(s):// or a local path", uri, u.Scheme)
	}
}

// DeliverSpool delivers what a spool directory left by a run (or by an
// interrupted mlflow-sync) still holds, waiting at most timeout. cfg
// gives the credentials (and may move the server: TrackingURI overrides
// the spool's). When the spool does not hold the run's end and status is
// not "", the run is finished with that status.
func DeliverSpool(ctx context.Context, dir string, cfg Config, status tracking.Status, timeout time.Duration) (tracking.Summary, error) {
	if status != "" && !status.Valid() {
		return tracking.Summary{}, fmt.Errorf("mlflow: invalid status %q", status)
	}
	cfg.RunID = "" // the spool names its run
	cfg.Getenv = hideRunID(cfg.Getenv)
	cfg, err := cfg.resolve()
	if err != nil {
		return tracking.Summary{}, err
	}
	sp, rec, err := openSpool(dir)
	if err != nil {
		return tracking.Summary{}, err
	}
	uri := rec.state.TrackingURI
	if cfg.TrackingURI != "" {
		uri = cfg.TrackingURI
	}
	base, err := parseServerURI(uri)
	if err != nil {
		sp.close(false)
		return tracking.Summary{}, err
	}
	t := newTracker(cfg, base, sp, rec.state)
	t.nextSeq, t.ackSeq, t.durable = rec.nextSeq, rec.ack.Seq, rec.size
	t.readOff, t.ackEnd = rec.ack.End, rec.ack.End
	t.delivered, t.rejected = rec.ack.Delivered, rec.ack.Rejected
	t.total = t.delivered.Add(t.rejected).Add(rec.pending)
	t.finishAcked = rec.ack.Finished
	t.uncertain = true // the last request before the stop may have landed
	t.start()
	stopCtx := context.AfterFunc(ctx, func() { t.stopNow() })
	defer stopCtx()
	st := ""
	if !rec.finish && status != "" {
		st = string(status)
	}
	err = t.finish(st, cfg.Now().UnixMilli(), timeout)
	return t.Summary(), err
}

// stopNow makes a waiting stop give up at once.
func (t *Tracker) stopNow() {
	t.stopOnce.Do(func() {
		close(t.stopPersist)
		t.cancel()
	})
	t.mu.Lock()
	t.abort = true
	t.notifyLocked()
	t.mu.Unlock()
}

// hideRunID is getenv without MLFLOW_RUN_ID, for the commands that create
// their own run.
func hideRunID(getenv func(string) string) func(string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	return func(k string) string {
		if k == EnvRunID {
			return ""
		}
		return getenv(k)
	}
}

// ReplayOptions tune Replay.
type ReplayOptions struct {
	// Force copies the run again although the server already holds a
	// copy of it (a run tagged whet.source.run_id with its id).
	Force bool
	// Timeout bounds the delivery; what is left stays in the spool.
	Timeout time.Duration
}

// Replay copies a run read from a local MLflow tracking directory to the
// server of cfg: a new run with the local run's name, start time, tags,
// params, every metric point (with its own timestamp and step), the files
// of its artifact directory and its status and end time, in requests
// within MLflow's limits and through a spool, like a live run. The new run
// is tagged whet.source.run_id with the local run's id, and Replay refuses
// to copy a run twice unless opts.Force is set. The experiment is cfg's
// (or MLFLOW_EXPERIMENT_NAME's), else the local run's experiment's name.
func Replay(ctx context.Context, rd *mlflowfile.RunData, cfg Config, opts ReplayOptions) (*Tracker, error) {
	cfg.RunID = ""
	cfg.Getenv = hideRunID(cfg.Getenv)
	cfg = cfg.fromEnv()
	if cfg.Experiment == "" && cfg.ExperimentID == "" {
		cfg.Experiment = rd.ExperimentName
	}
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	base, err := parseServerURI(rc.TrackingURI)
	if err != nil {
		return nil, err
	}
	cl := newClient(rc, base)
	if rc.ExperimentID == "" {
		if rc.ExperimentID, err = cl.getOrCreateExperiment(ctx, rc.Experiment); err != nil {
			return nil, err
		}
	}
	prev, err := cl.searchRunByTag(ctx, rc.ExperimentID, TagSourceRun, rd.RunID)
	if err != nil {
		return nil, err
	}
	if prev != nil && !opts.Force {
		return nil, fmt.Errorf("mlflow: the server already holds a copy of run %s: run %s of experiment %s (use --force to copy it again)",
			rd.RunID, prev.Info.id(), rc.ExperimentID)
	}
	cfg.ExperimentID, cfg.Experiment = rc.ExperimentID, ""
	cfg.RunName = rd.RunName
	if rd.StartTime > 0 {
		cfg.StartTime = time.UnixMilli(rd.StartTime)
	}
	// System tags go with the run's creation, the others in batches.
	create := map[string]string{TagSourceRun: rd.RunID}
	rest := map[string]string{}
	for k, v := range rd.Tags {
		if strings.HasPrefix(k, "mlflow.") {
			create[k] = v
		} else {
			rest[k] = v
		}
	}
	cfg.Tags = create
	t, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	stopCtx := context.AfterFunc(ctx, t.stopNow)
	defer stopCtx()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(t.LogParams(rd.Params))
	add(t.SetTags(rest))
	add(t.LogMetricPoints(rd.Metrics))
	if rd.ArtifactDir != "" {
		if ents, err := os.ReadDir(rd.ArtifactDir); err == nil && len(ents) > 0 {
			add(t.LogArtifact(rd.ArtifactDir, ""))
		}
	}
	status, end := "", int64(0)
	if s := tracking.Status(rd.Status); s.Valid() {
		status, end = rd.Status, rd.EndTime
		if end <= 0 {
			end = rc.Now().UnixMilli()
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = rc.FlushTimeout
	}
	add(t.finish(status, end, timeout))
	if len(errs) > 0 {
		return t, fmt.Errorf("replay run %s: %w", rd.RunID, errors.Join(errs...))
	}
	return t, nil
}
