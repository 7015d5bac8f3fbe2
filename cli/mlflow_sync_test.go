package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/mlflow/mlflowtest"
	"github.com/whet-ai/whet/tracking/mlflowfile"
)

// clearMLflowEnv keeps the machine's MLflow settings out of a test.
func clearMLflowEnv(t *testing.T) {
	for _, k := range []string{"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID",
		"MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} {
		t.Setenv(k, "")
	}
}

// localRun writes a finished run with 250 params, 2500 metric points,
// 150 tags and an artifact into a local MLflow tracking directory.
func localRun(t *testing.T) (dir string, metrics int) {
	t.Helper()
	r, err := mlflowfile.Create(mlflowfile.Options{Root: filepath.Join(t.TempDir(), "mlruns"), Experiment: "offline", RunName: "tiny-lora"})
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for i := range 250 {
		params[fmt.Sprintf("recipe.p%03d", i)] = fmt.Sprint(i)
	}
	tags := map[string]string{}
	for i := range 150 {
		tags[fmt.Sprintf("note%03d", i)] = "x"
	}
	if err := r.LogParams(params); err != nil {
		t.Fatal(err)
	}
	if err := r.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	for step := range 1250 {
		ts := time.UnixMilli(int64(1_700_000_000_000 + 1000*step))
		if err := r.LogMetrics(int64(step), map[string]float64{"loss": 1 / float64(step+1), "lr": 2e-4}, ts); err != nil {
			t.Fatal(err)
		}
	}
	art := filepath.Join(t.TempDir(), "adapter_config.json")
	os.WriteFile(art, []byte(`{"r": 8}`), 0o644)
	if err := r.LogArtifact(art, "adapter"); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	return r.Dir(), 2500
}

func TestMLflowSync(t *testing.T) {
	clearMLflowEnv(t)
	srv, err := mlflowtest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Token = "tok"
	t.Setenv("MLFLOW_TRACKING_TOKEN", "tok")
	dir, nMetrics := localRun(t)
	spool := t.TempDir()

	code, out, errs := run(t, "mlflow-sync", "--run", dir, "--tracking-uri", srv.URL, "--experiment", "synced", "--spool-dir", spool)
	if code != 0 {
		t.Fatalf("mlflow-sync: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	for _, want := range []string{"local run ", "250 params", "2500 metric points", "delivered 2500 metrics, 250 params", "1 artifacts"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	runs := srv.Runs()
	if len(runs) != 1 {
		t.Fatalf("%d runs on the server", len(runs))
	}
	r := runs[0]
	rd, _ := mlflowfile.ReadRun(dir)
	if r.Name != "tiny-lora" || r.Status != "FINISHED" || r.StartTime != rd.StartTime || r.EndTime != rd.EndTime ||
		len(r.Params) != 250 || len(r.Metrics) != nMetrics || r.Tags["note149"] != "x" || r.Tags["whet.source.run_id"] != rd.RunID {
		t.Errorf("synced run: name %s status %s start %d end %d, %d params, %d metrics, tags %d",
			r.Name, r.Status, r.StartTime, r.EndTime, len(r.Params), len(r.Metrics), len(r.Tags))
	}
	if srv.Experiments()["synced"].ID != r.ExperimentID {
		t.Errorf("run in experiment %s, want the one named synced", r.ExperimentID)
	}
	if _, ok := srv.Artifact(r.ExperimentID + "/" + r.ID + "/artifacts/adapter/adapter_config.json"); !ok {
		t.Errorf("artifact not uploaded: %v", srv.ArtifactPaths())
	}
	seen := map[string]int{}
	for _, m := range r.Metrics {
		seen[fmt.Sprintf("%s@%d@%d", m.Key, m.Step, m.Timestamp)]++
	}
	if len(seen) != nMetrics {
		t.Errorf("%d distinct metric points, want %d", len(seen), nMetrics)
	}
	// Every request within MLflow's limits, and none refused (but the
	// look-up of the experiment before it is created).
	for _, q := range srv.Requests() {
		refused := q.Status != 200 && !(q.Status == 404 && strings.HasSuffix(q.Path, "experiments/get-by-name"))
		if q.Metrics > 1000 || q.Params > 100 || q.Tags > 100 || q.Metrics+q.Params+q.Tags > 1000 || q.Bytes > 1_000_000 || refused {
			t.Errorf("request %s: %d metrics, %d params, %d tags, %d bytes, HTTP %d", q.Path, q.Metrics, q.Params, q.Tags, q.Bytes, q.Status)
		}
		if q.Authorization != "Bearer tok" {
			t.Errorf("request %s without the token", q.Path)
		}
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("the delivered spool was kept: %v", ents)
	}

	// A second copy is refused, unless forced; MLFLOW_TRACKING_URI and the
	// local experiment's name are the defaults.
	t.Setenv("MLFLOW_TRACKING_URI", srv.URL)
	code, _, errs = run(t, "mlflow-sync", "--run", dir, "--experiment", "synced", "--spool-dir", spool)
	if code != 1 || !strings.Contains(errs, "already holds a copy") {
		t.Errorf("second sync: exit %d, stderr %s", code, errs)
	}
	code, _, errs = run(t, "mlflow-sync", "--run", dir, "--spool-dir", spool)
	if code != 0 {
		t.Errorf("sync into the local experiment's name: exit %d, stderr %s", code, errs)
	}
	if _, ok := srv.Experiments()["offline"]; !ok || len(srv.Runs()) != 2 {
		t.Errorf("experiments %v, %d runs", srv.Experiments(), len(srv.Runs()))
	}
}

func TestMLflowSyncSpool(t *testing.T) {
	clearMLflowEnv(t)
	srv, err := mlflowtest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir, _ := localRun(t)
	spool := t.TempDir()
	// The server refuses every log-batch until the deadline: the copy
	// stops with its data in a spool.
	srv.Fail("runs/log-batch", 1_000_000, mlflowtest.Fail503)
	code, out, errs := run(t, "mlflow-sync", "--run", dir, "--tracking-uri", srv.URL, "--spool-dir", spool, "--timeout", "300ms")
	if code != 1 || !strings.Contains(errs, "whet mlflow-sync --spool ") {
		t.Fatalf("sync against a failing server: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	ents, _ := os.ReadDir(spool)
	if len(ents) != 1 {
		t.Fatalf("spool directory holds %v", ents)
	}
	srv.ClearFailures()
	code, out, errs = run(t, "mlflow-sync", "--spool", filepath.Join(spool, ents[0].Name()))
	if code != 0 || !strings.Contains(out, "delivered 2500 metrics, 250 params, 150 tags") {
		t.Fatalf("mlflow-sync --spool: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	r := srv.Runs()[0]
	if len(r.Metrics) != 2500 || r.Status != "FINISHED" {
		t.Errorf("%d metrics, status %s", len(r.Metrics), r.Status)
	}
}

func TestMLflowSyncUsage(t *testing.T) {
	clearMLflowEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mlflow-sync"}, 2, "exactly one of --run and --spool"},
		{[]string{"mlflow-sync", "--run", "a", "--spool", "b"}, 2, "exactly one of --run and --spool"},
		{[]string{"mlflow-sync", "--run", "a", "--status", "FAILED"}, 2, "--status goes with --spool"},
		{[]string{"mlflow-sync", "--spool", "a", "--status", "DONE"}, 2, "want FINISHED, FAILED or KILLED"},
		{[]string{"mlflow-sync", "--run", t.TempDir()}, 1, "meta.yaml"},
		{[]string{"mlflow-sync", "--spool", t.TempDir()}, 1, "not a spool directory"},
	} {
		code, _, errs := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("whet %v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	dir, _ := localRun(t)
	if code, _, errs := run(t, "mlflow-sync", "--run", dir, "--spool-dir", t.TempDir()); code != 1 || !strings.Contains(errs, "no tracking URI") {
		t.Errorf("no server: exit %d, stderr %s", code, errs)
	}
}
