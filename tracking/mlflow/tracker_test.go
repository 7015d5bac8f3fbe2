package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/mlflow/mlflowtest"
	"github.com/whet-ai/whet/tracking/mlflowfile"
)

var urlParse = url.Parse

// env is an environment for Config.Getenv, so that tests do not read the
// machine's.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func newServer(t *testing.T) *mlflowtest.Server {
	t.Helper()
	s, err := mlflowtest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testConfig talks to srv with fast retries and an empty environment.
func testConfig(t *testing.T, srv *mlflowtest.Server) Config {
	return Config{
		TrackingURI: srv.URL, SpoolDir: t.TempDir(), Getenv: env(),
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
		RequestTimeout: 2 * time.Second, StartTimeout: 2 * time.Second, FlushTimeout: 20 * time.Second,
		Logf: t.Logf,
	}
}

func mustNew(t *testing.T, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func batches(srv *mlflowtest.Server) []mlflowtest.Request {
	var out []mlflowtest.Request
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "runs/log-batch") && r.Status == 200 {
			out = append(out, r)
		}
	}
	return out
}

func onlyRun(t *testing.T, srv *mlflowtest.Server) mlflowtest.Run {
	t.Helper()
	runs := srv.Runs()
	if len(runs) != 1 {
		t.Fatalf("the server holds %d runs, want 1", len(runs))
	}
	return runs[0]
}

// checkOnce checks that the run holds each (key, step) of want exactly
// once, with its value.
func checkOnce(t *testing.T, run mlflowtest.Run, want map[string]float64) {
	t.Helper()
	got := map[string][]float64{}
	for _, m := range run.Metrics {
		k := fmt.Sprintf("%s@%d", m.Key, m.Step)
		got[k] = append(got[k], m.Value)
	}
	dups, missing := 0, 0
	for k, v := range want {
		switch vs := got[k]; {
		case len(vs) == 0:
			missing++
		case len(vs) > 1:
			dups++
		case vs[0] != v && !(math.IsNaN(v) && math.IsNaN(vs[0])):
			t.Errorf("%s = %v, want %v", k, vs[0], v)
		}
	}
	if dups > 0 || missing > 0 || len(got) != len(want) {
		t.Errorf("%d metric points (%d distinct), want %d: %d duplicated, %d missing", len(run.Metrics), len(got), len(want), dups, missing)
	}
}

func TestMLflowInt64AndIDFields(t *testing.T) {
	var v struct {
		A, B, C Int64
		I, J    ID
		F, G, H Float
	}
	in := `{"A": 1700000000123, "B": "1700000000123", "C": "-5", "I": 123456789012, "J": "42", "F": "NaN", "G": "-Infinity", "H": 0.25}`
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 1700000000123 || v.B != 1700000000123 || v.C != -5 || v.I != "123456789012" || v.J != "42" ||
		!math.IsNaN(float64(v.F)) || !math.IsInf(float64(v.G), -1) || v.H != 0.25 {
		t.Errorf("decoded %+v", v)
	}
	for _, bad := range []string{`{"A": "x"}`, `{"A": 1.5}`, `{"F": "many"}`, `{"I": [1]}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
	out, _ := json.Marshal(WireMetric{Key: "k", Value: Float(math.Inf(1)), Timestamp: 5, Step: 2})
	if string(out) != `{"key":"k","value":"Infinity","timestamp":5,"step":2}` {
		t.Errorf("encoded %s", out)
	}
}

func TestMLflowGetOrCreateExperiment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       func(*Config)
		numeric   bool
		wantName  string
		wantExpID func(*mlflowtest.Server) string
	}{
		{"default experiment", func(c *Config) {}, false, "Default", func(*mlflowtest.Server) string { return "0" }},
		{"named in config, created", func(c *Config) { c.Experiment = "sft-qwen" }, false, "sft-qwen", nil},
		{"named by MLFLOW_EXPERIMENT_NAME, numeric ids", func(c *Config) { c.Getenv = env(EnvExperimentName, "from-env") }, true, "from-env", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			srv.NumericIDs = tc.numeric
			cfg := testConfig(t, srv)
			tc.cfg(&cfg)
			ids := map[string]bool{}
			for range 2 { // the second tracker finds the experiment the first created
				tr := mustNew(t, cfg)
				if err := tr.Finish(tracking.StatusFinished); err != nil {
					t.Fatal(err)
				}
				ids[tr.st.ExperimentID] = true
			}
			exp, ok := srv.Experiments()[tc.wantName]
			if !ok {
				t.Fatalf("no experiment %q on the server: %v", tc.wantName, srv.Experiments())
			}
			if len(ids) != 1 || !ids[exp.ID] {
				t.Errorf("runs went to experiments %v, want only %s", ids, exp.ID)
			}
			if tc.wantExpID != nil && exp.ID != tc.wantExpID(srv) {
				t.Errorf("experiment id %s", exp.ID)
			}
			if n := len(srv.Experiments()); tc.wantName != "Default" && n != 2 {
				t.Errorf("%d experiments, want Default and %s", n, tc.wantName)
			}
		})
	}
}

func TestMLflowRunCreationTags(t *testing.T) {
	t.Setenv("LOGNAME", "bob")
	srv := newServer(t)
	cfg := testConfig(t, srv)
	cfg.RunName = "qwen-0.5b-lora"
	cfg.Tags = map[string]string{"team": "nlp", "bad:key": "v"}
	cfg.StartTime = time.UnixMilli(1_700_000_000_000)
	tr := mustNew(t, cfg)
	if tr.RunID() == "" {
		t.Fatal("no run id after New")
	}
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	run := onlyRun(t, srv)
	for k, want := range map[string]string{
		"mlflow.runName": "qwen-0.5b-lora", "mlflow.user": "bob", "mlflow.source.type": "LOCAL",
		"mlflow.source.name": filepath.Base(os.Args[0]), "team": "nlp", "bad_key": "v", TagSpool: filepath.Base(tr.SpoolDir()),
	} {
		if run.Tags[k] != want {
			t.Errorf("tag %s = %q, want %q", k, run.Tags[k], want)
		}
	}
	if run.Name != "qwen-0.5b-lora" || run.StartTime != 1_700_000_000_000 || run.UserID != "bob" {
		t.Errorf("run = %+v", run)
	}
	if _, err := os.Stat(tr.SpoolDir()); !os.IsNotExist(err) {
		t.Errorf("the spool of a fully delivered run is still there: %v", err)
	}
	sum := tr.Summary().Sinks[0]
	if !strings.Contains(sum.Target, "/#/experiments/0/runs/"+run.ID) || sum.Pending.Total() != 0 {
		t.Errorf("summary %+v", sum)
	}
}

func TestMLflowParamsBatched(t *testing.T) {
	srv := newServer(t)
	tr := mustNew(t, testConfig(t, srv))
	// 250 params: a nested recipe, flattened.
	recipe := map[string]any{}
	for i := range 25 {
		layer := map[string]any{}
		for j := range 10 {
			layer[fmt.Sprintf("p%d", j)] = i*10 + j
		}
		recipe[fmt.Sprintf("layer%02d", i)] = layer
	}
	params := tracking.FlattenParams(recipe)
	if len(params) != 250 {
		t.Fatalf("%d params", len(params))
	}
	if err := tr.LogParams(params); err != nil {
		t.Fatal(err)
	}
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range batches(srv) {
		if b.Params > 0 {
			sizes = append(sizes, b.Params)
		}
	}
	if fmt.Sprint(sizes) != "[100 100 50]" {
		t.Errorf("param batches %v, want [100 100 50]", sizes)
	}
	run := onlyRun(t, srv)
	if len(run.Params) != 250 || run.Params["layer07.p3"] != "73" {
		t.Errorf("%d params on the server, layer07.p3 = %q", len(run.Params), run.Params["layer07.p3"])
	}
}

func TestMLflowMetricsBatched(t *testing.T) {
	for _, tc := range []struct {
		name        string
		calls, keys int
		slow        bool // the server is slow, so calls pile up and are coalesced
		maxRequests int
	}{
		{"2500 metrics in one call", 1, 2500, false, 3},
		{"2500 metrics over 250 steps, coalesced", 250, 10, true, 60},
		{"1 metric a step", 40, 1, false, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			tr := mustNew(t, testConfig(t, srv))
			if tc.slow {
				srv.SetDelay(30 * time.Millisecond)
			}
			want := map[string]float64{}
			for step := range tc.calls {
				m := map[string]float64{}
				for k := range tc.keys {
					v := float64(step*tc.keys + k)
					m[fmt.Sprintf("m%04d", k)] = v
					want[fmt.Sprintf("m%04d@%d", k, step)] = v
				}
				if err := tr.LogMetrics(int64(step), m, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.Finish(tracking.StatusFinished); err != nil {
				t.Fatal(err)
			}
			total, n := 0, 0
			for _, b := range batches(srv) {
				if b.Metrics == 0 {
					continue
				}
				n++
				total += b.Metrics
				if b.Metrics > MaxMetricsPerBatch || b.Metrics+b.Params+b.Tags > MaxEntitiesPerBatch || b.Bytes > MaxRequestBytes {
					t.Errorf("a batch of %d metrics, %d tags, %d bytes breaks MLflow's limits", b.Metrics, b.Tags, b.Bytes)
				}
			}
			if total != tc.calls*tc.keys || n > tc.maxRequests {
				t.Errorf("%d metrics in %d requests, want %d in at most %d", total, n, tc.calls*tc.keys, tc.maxRequests)
			}
			checkOnce(t, onlyRun(t, srv), want)
		})
	}
}

func TestMLflowRequestSizeLimit(t *testing.T) {
	srv := newServer(t)
	tr := mustNew(t, testConfig(t, srv))
	// 100 params of 6000 three-byte characters: 1.8 MB, over one request.
	params := map[string]string{}
	for i := range 100 {
		params[fmt.Sprintf("long%03d", i)] = strings.Repeat("€", 6000)
	}
	params["toolong"] = strings.Repeat("x", 7000) // cut to MLflow's 6000
	if err := tr.LogParams(params); err != nil {
		t.Fatal(err)
	}
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range batches(srv) {
		if b.Params > 0 {
			n++
			if b.Bytes > MaxRequestBytes {
				t.Errorf("a request of %d bytes", b.Bytes)
			}
		}
	}
	run := onlyRun(t, srv)
	if n < 2 || len(run.Params) != 101 || len(run.Params["toolong"]) != 6000 {
		t.Errorf("%d requests, %d params, toolong has %d chars", n, len(run.Params), len(run.Params["toolong"]))
	}
}

func TestMLflowServerEnforcesLimits(t *testing.T) {
	srv := newServer(t)
	id := srv.AddRun("0", "r", "RUNNING")
	metric := func(i int) map[string]any {
		return map[string]any{"key": fmt.Sprintf("m%d", i), "value": 1, "timestamp": 1, "step": 0}
	}
	kv := func(i int) map[string]any { return map[string]any{"key": fmt.Sprintf("k%d", i), "value": "v"} }
	many := func(n int, f func(int) map[string]any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"1000 metrics", map[string]any{"metrics": many(1000, metric)}, 200, ""},
		{"1001 metrics", map[string]any{"metrics": many(1001, metric)}, 400, "at most 1000 metrics"},
		{"101 params", map[string]any{"params": many(101, kv)}, 400, "at most 100 params"},
		{"101 tags", map[string]any{"tags": many(101, kv)}, 400, "at most 100 tags"},
		{"1000 metrics and a tag", map[string]any{"metrics": many(1000, metric), "tags": many(1, kv)}, 400, "at most 1000 metrics, params, and tags"},
		{"over 1 MB", map[string]any{"tags": []any{map[string]any{"key": "k", "value": strings.Repeat("x", 1_000_001)}}}, 400, "at most 1000000 bytes"},
		{"bad key", map[string]any{"metrics": []any{map[string]any{"key": "a:b", "value": 1, "timestamp": 1, "step": 0}}}, 400, "Invalid metric name"},
		{"int64 as strings", map[string]any{"metrics": []any{map[string]any{"key": "s", "value": "NaN", "timestamp": "17", "step": "3"}}}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["run_id"] = id
			b, _ := json.Marshal(tc.body)
			resp, err := http.Post(srv.URL+"/api/2.0/mlflow/runs/log-batch", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ ErrorCode, Message string }
			var raw map[string]string
			json.NewDecoder(resp.Body).Decode(&raw)
			e.ErrorCode, e.Message = raw["error_code"], raw["message"]
			if resp.StatusCode != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("HTTP %d %s %q; want %d and %q", resp.StatusCode, e.ErrorCode, e.Message, tc.status, tc.want)
			}
			if tc.status == 400 && e.ErrorCode != "INVALID_PARAMETER_VALUE" {
				t.Errorf("error code %q", e.ErrorCode)
			}
		})
	}
}

func TestMLflowFinishStatus(t *testing.T) {
	for _, st := range []tracking.Status{tracking.StatusFinished, tracking.StatusFailed, tracking.StatusKilled} {
		t.Run(string(st), func(t *testing.T) {
			srv := newServer(t)
			cfg := testConfig(t, srv)
			cfg.Now = func() time.Time { return time.UnixMilli(1_800_000_000_000) }
			tr := mustNew(t, cfg)
			if err := tr.LogMetrics(1, map[string]float64{"loss": 1}, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if err := tr.Finish(st); err != nil {
				t.Fatal(err)
			}
			run := onlyRun(t, srv)
			if run.Status != string(st) || run.EndTime != 1_800_000_000_000 {
				t.Errorf("status %s end %d, want %s and 1800000000000", run.Status, run.EndTime, st)
			}
			if err := tr.LogMetrics(2, map[string]float64{"loss": 1}, time.Time{}); err == nil {
				t.Error("logging after Finish succeeded")
			}
			if err := tr.Finish(st); err == nil {
				t.Error("a second Finish succeeded")
			}
		})
	}
	srv := newServer(t)
	tr := mustNew(t, testConfig(t, srv))
	if err := tr.Finish("RUNNING"); err == nil {
		t.Error("Finish(RUNNING) succeeded")
	}
	tr.Finish(tracking.StatusKilled)
}

func TestMLflowInt64AsStrings(t *testing.T) {
	srv := newServer(t)
	srv.Int64AsString, srv.NumericIDs = true, true
	cfg := testConfig(t, srv)
	cfg.Experiment = "strings"
	tr := mustNew(t, cfg)
	run, err := tr.cl.getRun(context.Background(), tr.RunID())
	if err != nil {
		t.Fatal(err)
	}
	if run.Info.StartTime <= 0 || run.Info.ExperimentID != ID(srv.Experiments()["strings"].ID) {
		t.Errorf("run info %+v", run.Info)
	}
	tr.LogMetrics(3, map[string]float64{"loss": math.NaN(), "acc": math.Inf(1)}, time.UnixMilli(5))
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	run, err = tr.cl.getRun(context.Background(), tr.RunID())
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Data.Metrics) != 2 || run.Info.EndTime <= 0 {
		t.Fatalf("run %+v", run)
	}
	for _, m := range run.Data.Metrics {
		if m.Step != 3 || m.Timestamp != 5 || (m.Key == "loss") != math.IsNaN(float64(m.Value)) {
			t.Errorf("metric %+v", m)
		}
	}
}

func TestMLflowAuth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		token    string // the server's
		user     string
		env      []string
		wantAuth string
		fails    bool
	}{
		{"bearer token", "s3cret", "", []string{EnvToken, "s3cret"}, "Bearer s3cret", false},
		{"basic auth", "", "ann", []string{EnvUsername, "ann", EnvPassword, "pw"}, "Basic YW5uOnB3", false},
		{"wrong token", "s3cret", "", []string{EnvToken, "nope"}, "", true},
		{"no credentials", "", "ann", nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Token, srv.User, srv.Password = tc.token, tc.user, "pw"
			cfg := testConfig(t, srv)
			cfg.Getenv = env(tc.env...)
			tr, err := New(context.Background(), cfg)
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), "401") {
					t.Fatalf("New: %v, want a 401 error", err)
				}
				if ents, _ := os.ReadDir(cfg.SpoolDir); len(ents) != 0 {
					t.Errorf("a refused run left a spool: %v", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tr.LogMetrics(1, map[string]float64{"x": 1}, time.Time{})
			os.WriteFile(filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644)
			if err := tr.Finish(tracking.StatusFinished); err != nil {
				t.Fatal(err)
			}
			for _, r := range srv.Requests() {
				if r.Authorization != tc.wantAuth {
					t.Errorf("%s %s: Authorization %q, want %q", r.Method, r.Path, r.Authorization, tc.wantAuth)
				}
			}
		})
	}
}

func TestMLflowResumeRunID(t *testing.T) {
	srv := newServer(t)
	id := srv.AddRun("0", "earlier", "FAILED")
	cfg := testConfig(t, srv)
	cfg.Getenv = env(EnvRunID, id)
	tr := mustNew(t, cfg)
	if tr.RunID() != id {
		t.Fatalf("run id %q, want %q", tr.RunID(), id)
	}
	if run, _ := srv.Run(id); run.Status != "RUNNING" {
		t.Errorf("resumed run is %s, want RUNNING", run.Status)
	}
	tr.LogParams(map[string]string{"lr": "1e-4"})
	tr.LogMetrics(7, map[string]float64{"loss": 0.5}, time.Time{})
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	run := onlyRun(t, srv)
	if run.ID != id || run.Status != "FINISHED" || run.Params["lr"] != "1e-4" || len(run.Metrics) != 1 {
		t.Errorf("run %+v", run)
	}
	// An unknown run id is refused at once.
	cfg.Getenv = env(EnvRunID, "0123456789abcdef0123456789abcdef")
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("resuming an unknown run: %v", err)
	}
}

func writeArtifacts(t *testing.T) (file, dir string) {
	t.Helper()
	base := t.TempDir()
	file = filepath.Join(base, "recipe.yaml")
	os.WriteFile(file, []byte("lr: 1\n"), 0o644)
	dir = filepath.Join(base, "adapter")
	os.MkdirAll(filepath.Join(dir, "nested"), 0o755)
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(`{"r": 8}`), 0o644)
	os.WriteFile(filepath.Join(dir, "nested", "weights bin"), bytes.Repeat([]byte{7}, 100_000), 0o644)
	return file, dir
}

func TestMLflowArtifacts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fileURI bool
	}{
		{"mlflow-artifacts proxy", false},
		{"file artifact root", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			root := t.TempDir()
			if tc.fileURI {
				srv.ArtifactRoot = root
			}
			tr := mustNew(t, testConfig(t, srv))
			file, dir := writeArtifacts(t)
			if err := tr.LogArtifact(file, ""); err != nil {
				t.Fatal(err)
			}
			if err := tr.LogArtifact(dir, "model/adapter"); err != nil {
				t.Fatal(err)
			}
			if err := tr.LogArtifact(file, "../out"); err == nil {
				t.Error("an artifact path leaving the run was accepted")
			}
			if err := tr.LogArtifact(filepath.Join(dir, "missing"), ""); err == nil {
				t.Error("a missing file was accepted")
			}
			if err := tr.Finish(tracking.StatusFinished); err != nil {
				t.Fatal(err)
			}
			run := onlyRun(t, srv)
			prefix := "0/" + run.ID + "/artifacts/"
			want := map[string]int{"recipe.yaml": 6, "model/adapter/adapter_config.json": 8, "model/adapter/nested/weights bin": 100_000}
			for p, size := range want {
				var data []byte
				var ok bool
				if tc.fileURI {
					var err error
					data, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(prefix+p)))
					ok = err == nil
				} else {
					data, ok = srv.Artifact(prefix + p)
				}
				if !ok || len(data) != size {
					t.Errorf("artifact %s: found %v, %d bytes, want %d (have %v)", p, ok, len(data), size, srv.ArtifactPaths())
				}
			}
			if got := tr.Summary().Sinks[0].Delivered.Artifacts; got != 2 {
				t.Errorf("delivered %d artifacts, want 2", got)
			}
		})
	}
}

func TestMLflowProxyURL(t *testing.T) {
	for _, tc := range []struct{ tracking, artifact, want string }{
		{"http://localhost:5000", "mlflow-artifacts:/0/abc/artifacts", "http://localhost:5000/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts"},
		{"https://h.example/mlflow/", "mlflow-artifacts:/0/abc/artifacts", "https://h.example/mlflow/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts"},
		{"http://localhost:5000", "mlflow-artifacts://other:4242/my/path", "http://other:4242/api/2.0/mlflow-artifacts/artifacts/my/path"},
		{"http://localhost:5000", "mlflow-artifacts:/", "http://localhost:5000/api/2.0/mlflow-artifacts/artifacts"},
	} {
		tu, _ := parseServerURI(tc.tracking)
		au, _ := urlParse(tc.artifact)
		if got := proxyURL(tu, au); got != tc.want {
			t.Errorf("proxyURL(%s, %s) = %s, want %s", tc.tracking, tc.artifact, got, tc.want)
		}
	}
}

// TestMLflowFaultExactlyOnce: the server breaks in every way in the middle
// of a run (503s, dropped connections before and after it stored a
// batch, 503s after it stored one, gone entirely with connections
// refused) and comes back; every metric arrives exactly once.
func TestMLflowFaultExactlyOnce(t *testing.T) {
	srv := newServer(t)
	cfg := testConfig(t, srv)
	tr := mustNew(t, cfg)
	want := map[string]float64{}
	step := 0
	logSteps := func(n int) {
		for range n {
			step++
			m := map[string]float64{"loss": 1 / float64(step), "lr": float64(step) * 1e-5, "tokens": float64(step * 512)}
			for k, v := range m {
				want[fmt.Sprintf("%s@%d", k, step)] = v
			}
			start := time.Now()
			if err := tr.LogMetrics(int64(step), m, time.Time{}); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("LogMetrics took %s while the server was failing", d)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	// untilHit logs steps until the server has failed as told.
	untilHit := func() {
		t.Helper()
		for i := 0; srv.PendingFailures() > 0; i++ {
			if i == 2000 {
				t.Fatalf("%d injected failures never happened", srv.PendingFailures())
			}
			logSteps(1)
		}
	}
	logSteps(50)
	for _, f := range []struct {
		mode mlflowtest.Mode
		n    int
	}{
		{mlflowtest.Fail503, 3}, {mlflowtest.DropBefore, 2}, {mlflowtest.DropAfter, 2}, {mlflowtest.Fail503After, 2},
	} {
		srv.Fail("runs/log-batch", f.n, f.mode)
		untilHit()
		logSteps(20)
	}
	// The server goes away: connections are refused.
	srv.Stop()
	logSteps(100)
	time.Sleep(50 * time.Millisecond)
	if last := tr.Summary().Sinks[0].LastError; !strings.Contains(last, "connection refused") {
		t.Errorf("last error while the server was away: %q", last)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// It comes back, and drops an answer once more after storing the
	// batch, while the check of what it stored fails once too.
	srv.Fail("runs/log-batch", 1, mlflowtest.DropAfter)
	srv.Fail("runs/get", 1, mlflowtest.Fail503)
	untilHit()
	logSteps(20)
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	run := onlyRun(t, srv)
	checkOnce(t, run, want)
	if run.Status != "FINISHED" {
		t.Errorf("run status %s", run.Status)
	}
	failed := 0
	for _, r := range srv.Requests() {
		if r.Status != 200 {
			failed++
		}
	}
	if failed != 11 {
		t.Errorf("%d requests failed, want the 11 injected", failed)
	}
	sum := tr.Summary().Sinks[0]
	if sum.Delivered.Metrics != int64(len(want)) || sum.Pending.Total() != 0 || sum.Rejected.Total() != 0 {
		t.Errorf("summary %+v", sum)
	}
}

// TestMLflowSlowServerDoesNotBlock: with a server that takes 200 ms a
// request, logging still returns at once.
func TestMLflowSlowServerDoesNotBlock(t *testing.T) {
	srv := newServer(t)
	tr := mustNew(t, testConfig(t, srv))
	srv.SetDelay(200 * time.Millisecond)
	var durs []time.Duration
	want := map[string]float64{}
	for step := range 1000 {
		m := map[string]float64{"loss": float64(step), "lr": 1e-4, "grad_norm": 0.5, "tokens_per_sec": 1000}
		for k, v := range m {
			want[fmt.Sprintf("%s@%d", k, step)] = v
		}
		start := time.Now()
		if err := tr.LogMetrics(int64(step), m, time.Time{}); err != nil {
			t.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	median, p99 := durs[len(durs)/2], durs[len(durs)*99/100]
	t.Logf("LogMetrics with a 200 ms server: median %s, p99 %s, max %s", median, p99, durs[len(durs)-1])
	if median > 100*time.Microsecond || p99 > 5*time.Millisecond {
		t.Errorf("LogMetrics blocked: median %s, p99 %s", median, p99)
	}
	if err := tr.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, onlyRun(t, srv), want)
}

// TestMLflowServerDownThenSync: the server is down for the whole run. New
// does not fail, Finish gives up after its deadline with the items in the
// spool, and DeliverSpool (whet mlflow-sync --spool) delivers them, once.
func TestMLflowServerDownThenSync(t *testing.T) {
	srv := newServer(t)
	srv.Stop()
	cfg := testConfig(t, srv)
	cfg.StartTimeout = 200 * time.Millisecond
	cfg.FlushTimeout = 300 * time.Millisecond
	start := time.Now()
	tr := mustNew(t, cfg)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("New took %s with the server down", d)
	}
	want := map[string]float64{}
	for step := range 30 {
		want[fmt.Sprintf("loss@%d", step)] = float64(step)
		tr.LogMetrics(int64(step), map[string]float64{"loss": float64(step)}, time.Time{})
	}
	tr.LogParams(map[string]string{"lr": "1"})
	err := tr.Finish(tracking.StatusFinished)
	if err == nil || !strings.Contains(err.Error(), "whet mlflow-sync --spool "+tr.SpoolDir()) {
		t.Fatalf("Finish with the server down: %v", err)
	}
	sum := tr.Summary().Sinks[0]
	if sum.Pending.Metrics != 30 || sum.Pending.Params != 1 || sum.Spool != tr.SpoolDir() || sum.Delivered.Total() != 0 {
		t.Errorf("summary %+v", sum)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	dcfg := Config{Getenv: env(), SpoolDir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}
	got, err := DeliverSpool(context.Background(), tr.SpoolDir(), dcfg, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Sinks[0]; s.Delivered.Metrics != 30 || s.Delivered.Params != 1 || s.Pending.Total() != 0 {
		t.Errorf("delivered %+v", s)
	}
	run := onlyRun(t, srv)
	checkOnce(t, run, want)
	if run.Status != "FINISHED" || run.Params["lr"] != "1" || run.Tags[TagSpool] == "" {
		t.Errorf("run %+v", run)
	}
	if _, err := os.Stat(tr.SpoolDir()); !os.IsNotExist(err) {
		t.Errorf("the delivered spool is still there: %v", err)
	}
}

// TestMLflowSpoolRecoveryNoDuplicates: the server stores a batch but the
// answer is lost, and the server then disappears before the tracker can
// check; the process gives up (as if killed) with a torn last journal
// line. Delivering the spool later checks the run's marker and does not
// send the stored batch again.
func TestMLflowSpoolRecoveryNoDuplicates(t *testing.T) {
	srv := newServer(t)
	cfg := testConfig(t, srv)
	cfg.FlushTimeout = 300 * time.Millisecond
	tr := mustNew(t, cfg)
	want := map[string]float64{}
	srv.Fail("runs/log-batch", 1, mlflowtest.DropAfter)
	srv.Fail("runs/get", 1000, mlflowtest.DropBefore) // no check possible
	for step := range 20 {
		want[fmt.Sprintf("acc@%d", step)] = float64(step) / 20
		tr.LogMetrics(int64(step), map[string]float64{"acc": float64(step) / 20}, time.Time{})
	}
	if err := tr.Finish(tracking.StatusKilled); err == nil {
		t.Fatal("Finish delivered everything although the server could not be checked")
	}
	if n := len(onlyRun(t, srv).Metrics); n == 0 {
		t.Fatal("the dropped batch was not stored: the test does not exercise the ambiguous case")
	}
	// A crash in the middle of a journal write leaves half a line.
	jf, err := os.OpenFile(filepath.Join(tr.SpoolDir(), journalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	jf.WriteString(`{"seq":999,"kind":"metr`)
	jf.Close()

	srv2cfg := Config{Getenv: env(), SpoolDir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Logf: t.Logf}
	srv.ClearFailures()
	sum, err := DeliverSpool(context.Background(), tr.SpoolDir(), srv2cfg, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	run := onlyRun(t, srv)
	checkOnce(t, run, want)
	if run.Status != "KILLED" || sum.Sinks[0].Delivered.Metrics != 20 {
		t.Errorf("status %s, summary %+v", run.Status, sum)
	}
}

func TestMLflowSpoolLocked(t *testing.T) {
	srv := newServer(t)
	cfg := testConfig(t, srv)
	tr := mustNew(t, cfg)
	defer tr.Finish(tracking.StatusFinished)
	_, err := DeliverSpool(context.Background(), tr.SpoolDir(), Config{Getenv: env(), SpoolDir: t.TempDir()}, "", time.Second)
	if err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Errorf("delivering a spool in use: %v", err)
	}
}

func TestMLflowOpen(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		name, uri string
		wantFile  string // the file store's root, "" for the server
		wantErr   string
	}{
		{"no URI: ./mlruns", "", filepath.Join(dir, "mlruns"), ""},
		{"a path", filepath.Join(dir, "runs"), filepath.Join(dir, "runs"), ""},
		{"a file URI", "file://" + filepath.Join(dir, "uri"), filepath.Join(dir, "uri"), ""},
		{"a server", srv.URL, "", ""},
		{"databricks", "databricks", "", "not supported"},
		{"unsupported scheme", "s3://bucket/x", "", "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.TrackingURI = tc.uri
			tr, err := Open(context.Background(), cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open(%q): %v, want %q", tc.uri, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Finish(tracking.StatusFinished)
			fr, isFile := tr.(*mlflowfile.Run)
			if isFile != (tc.wantFile != "") {
				t.Fatalf("Open(%q) gave %T", tc.uri, tr)
			}
			if isFile && fr.Root() != tc.wantFile {
				t.Errorf("root %s, want %s", fr.Root(), tc.wantFile)
			}
		})
	}
}

func TestMLflowReplayFileRun(t *testing.T) {
	srv := newServer(t)
	root := t.TempDir()
	local, err := mlflowfile.Create(mlflowfile.Options{Root: root, Experiment: "local-exp", RunName: "offline", Tags: map[string]string{"team": "nlp"}})
	if err != nil {
		t.Fatal(err)
	}
	local.LogParams(map[string]string{"lr": "0.0002", "lora.r": "8"})
	want := map[string]float64{}
	for step := range 1200 {
		local.LogMetrics(int64(step), map[string]float64{"loss": float64(step) / 7}, time.UnixMilli(int64(1_700_000_000_000+step)))
		want[fmt.Sprintf("loss@%d", step)] = float64(step) / 7
	}
	file, _ := writeArtifacts(t)
	local.LogArtifact(file, "cfg")
	local.Finish(tracking.StatusFailed)
	rd, err := mlflowfile.ReadRun(local.Dir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{TrackingURI: srv.URL, Getenv: env(EnvRunID, "must-be-ignored"), SpoolDir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}
	tr, err := Replay(context.Background(), rd, cfg, ReplayOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run := onlyRun(t, srv)
	checkOnce(t, run, want)
	if run.Name != "offline" || run.Status != "FAILED" || run.StartTime != rd.StartTime || run.EndTime != rd.EndTime ||
		run.Tags["team"] != "nlp" || run.Tags[TagSourceRun] != rd.RunID || run.Params["lora.r"] != "8" {
		t.Errorf("replayed run %+v", run)
	}
	if srv.Experiments()["local-exp"].ID != run.ExperimentID {
		t.Errorf("run in experiment %s, want local-exp", run.ExperimentID)
	}
	for _, m := range run.Metrics {
		if m.Timestamp != 1_700_000_000_000+m.Step {
			t.Fatalf("metric %+v lost its timestamp", m)
		}
	}
	if _, ok := srv.Artifact(run.ExperimentID + "/" + run.ID + "/artifacts/cfg/recipe.yaml"); !ok {
		t.Errorf("artifact missing: %v", srv.ArtifactPaths())
	}
	if tr.Summary().Sinks[0].Delivered.Metrics != 1200 {
		t.Errorf("summary %+v", tr.Summary())
	}
	if _, err := Replay(context.Background(), rd, cfg, ReplayOptions{Timeout: 10 * time.Second}); err == nil || !strings.Contains(err.Error(), "already holds a copy") {
		t.Errorf("second replay: %v", err)
	}
	if _, err := Replay(context.Background(), rd, cfg, ReplayOptions{Force: true, Timeout: 10 * time.Second}); err != nil {
		t.Errorf("forced replay: %v", err)
	}
	if n := len(srv.Runs()); n != 2 {
		t.Errorf("%d runs after a forced replay, want 2", n)
	}
}

// TestMLflowRejectedIsolated: a batch the server refuses for good (a
// param whose value changed on a resumed run) is split, and only the
// record at fault is dropped; the rest, and later metrics, arrive.
func TestMLflowRejectedIsolated(t *testing.T) {
	srv := newServer(t)
	cfg := testConfig(t, srv)
	first := mustNew(t, cfg)
	first.LogParams(map[string]string{"lr": "1"})
	if err := first.Finish(tracking.StatusFailed); err != nil {
		t.Fatal(err)
	}
	cfg.Getenv = env(EnvRunID, first.RunID())
	tr := mustNew(t, cfg)
	srv.Stop()                                 // the calls below pile up in the journal and go out together
	tr.LogParams(map[string]string{"lr": "2"}) // refused: a param cannot change
	tr.LogParams(map[string]string{"wd": "0.1"})
	tr.LogParams(map[string]string{"lr": "1", "warmup": "10"}) // the same value again is fine
	tr.LogMetrics(1, map[string]float64{"loss": 3}, time.Time{})
	time.Sleep(100 * time.Millisecond)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	err := tr.Finish(tracking.StatusFinished)
	if err == nil || !strings.Contains(err.Error(), "refused 0 metrics, 1 params") || !strings.Contains(err.Error(), "Changing param values is not allowed") {
		t.Fatalf("Finish: %v", err)
	}
	run := onlyRun(t, srv)
	if run.Params["lr"] != "1" || run.Params["wd"] != "0.1" || run.Params["warmup"] != "10" || len(run.Metrics) != 1 || run.Status != "FINISHED" {
		t.Errorf("run %+v", run)
	}
	grouped := false
	for _, q := range srv.Requests() {
		grouped = grouped || q.Status == 400 && q.Params >= 2
	}
	if !grouped {
		t.Error("no refused request held several records: the split was not exercised")
	}
	sum := tr.Summary().Sinks[0]
	if sum.Rejected != (tracking.Counts{Params: 1}) || sum.Delivered.Params != 3 || sum.Pending.Total() != 0 {
		t.Errorf("summary %+v", sum)
	}
}

// TestMLflowJournalCompaction: a settled journal past a few megabytes is
// emptied, and numbering and exactly-once delivery carry on across it and
// across a restart from the spool.
func TestMLflowJournalCompaction(t *testing.T) {
	srv := newServer(t)
	cfg := testConfig(t, srv)
	cfg.FlushTimeout = 300 * time.Millisecond
	tr := mustNew(t, cfg)
	want := map[string]float64{}
	log := func(from, to int) {
		for step := from; step < to; step++ {
			m := map[string]float64{}
			for k := range 20 {
				key := fmt.Sprintf("layer_%02d_grad_norm_with_a_long_name", k)
				m[key] = float64(step + k)
				want[fmt.Sprintf("%s@%d", key, step)] = float64(step + k)
			}
			tr.LogMetrics(int64(step), m, time.Time{})
		}
	}
	log(0, 3000) // 60,000 metrics, some 6 MB of journal
	journal := filepath.Join(tr.SpoolDir(), journalFile)
	deadline := time.Now().Add(20 * time.Second)
	for tr.Summary().Sinks[0].Delivered.Metrics < 60_000 {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", tr.Summary())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if st, err := os.Stat(journal); err != nil || st.Size() > 1<<20 {
		t.Fatalf("journal after delivering everything: %v bytes, %v", st.Size(), err)
	}
	srv.Stop()
	log(3000, 3100)
	if err := tr.Finish(tracking.StatusFinished); err == nil {
		t.Fatal("Finish succeeded with the server away")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	dcfg := Config{Getenv: env(), SpoolDir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}
	sum, err := DeliverSpool(context.Background(), tr.SpoolDir(), dcfg, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s := sum.Sinks[0]; s.Delivered.Metrics != 62_000 || s.Pending.Total() != 0 {
		t.Errorf("summary %+v", s)
	}
	run := onlyRun(t, srv)
	checkOnce(t, run, want)
	if run.Status != "FINISHED" {
		t.Errorf("status %s", run.Status)
	}
}
