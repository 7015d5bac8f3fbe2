package mlflow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/whet-ai/whet/internal/testref"
	"github.com/whet-ai/whet/tracking"
)

// TestRealServer runs the client against a real MLflow-compatible server
// (FastTrackML, which scripts/test starts when scripts/fetch-fasttrackml has
// built it) and reads everything back through the server's own API:
// experiment, run, params, batched metrics and the final status.
func TestRealServer(t *testing.T) {
	uri := os.Getenv("WHET_MLFLOW_TEST_URI")
	if uri == "" {
		testref.Missing(t, "WHET_MLFLOW_TEST_URI is not set: no MLflow-compatible server to test against (scripts/test starts FastTrackML when scripts/fetch-fasttrackml has built it)")
	}
	ctx := context.Background()
	exp := fmt.Sprintf("whet-test-%d", time.Now().UnixNano())
	tr, err := New(ctx, Config{TrackingURI: uri, Experiment: exp, RunName: "real-server", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for i := range 150 {
		params[fmt.Sprintf("p%03d", i)] = fmt.Sprint(i)
	}
	if err := tr.LogParams(params); err != nil {
		t.Fatal(err)
	}
	const steps = 600 // two metrics a step: 1200 values, more than one batch
	for s := range steps {
		if err := tr.LogMetrics(int64(s), map[string]float64{"loss": 1 / float64(s+1), "lr": 1e-4}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	get := func(path string, q url.Values, out any) {
		t.Helper()
		resp, err := http.Get(uri + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var run struct {
		Run struct {
			Info struct {
				Status       string `json:"status"`
				ExperimentID string `json:"experiment_id"`
			} `json:"info"`
			Data struct {
				Params []struct{ Key, Value string } `json:"params"`
			} `json:"data"`
		} `json:"run"`
	}
	get("/api/2.0/mlflow/runs/get", url.Values{"run_id": {tr.RunID()}}, &run)
	if run.Run.Info.Status != "FINISHED" {
		t.Errorf("run status %q, want FINISHED", run.Run.Info.Status)
	}
	if len(run.Run.Data.Params) != 150 {
		t.Errorf("%d params on the server, want 150", len(run.Run.Data.Params))
	}
	var expResp struct {
		Experiment struct {
			ID string `json:"experiment_id"`
		} `json:"experiment"`
	}
	get("/api/2.0/mlflow/experiments/get-by-name", url.Values{"experiment_name": {exp}}, &expResp)
	if expResp.Experiment.ID != run.Run.Info.ExperimentID {
		t.Errorf("run in experiment %q, the experiment %s is %q", run.Run.Info.ExperimentID, exp, expResp.Experiment.ID)
	}
	var hist struct {
		Metrics []struct {
			Step  json.Number `json:"step"`
			Value float64     `json:"value"`
		} `json:"metrics"`
	}
	get("/api/2.0/mlflow/metrics/get-history", url.Values{"run_id": {tr.RunID()}, "metric_key": {"loss"}}, &hist)
	if len(hist.Metrics) != steps {
		t.Errorf("%d loss values on the server, want %d (each exactly once)", len(hist.Metrics), steps)
	}
}
