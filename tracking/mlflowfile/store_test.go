package mlflowfile

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whet-ai/whet/tracking"
)

func TestMLflowFilePyFloat(t *testing.T) {
	// Each want is what Python 3 prints for repr(float(x)).
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{1, "1.0"}, {0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {0.5, "0.5"}, {-2.25, "-2.25"},
		{1e-5, "1e-05"}, {0.0001, "0.0001"}, {0.00012, "0.00012"}, {1.5e-7, "1.5e-07"},
		{1e16, "1e+16"}, {1234567890123456, "1234567890123456.0"}, {1.5e16, "1.5e+16"}, {1e22, "1e+22"},
		{sum(0.1, 0.2), "0.30000000000000004"}, {123.456, "123.456"}, {2e-4, "0.0002"}, {5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"}, {100, "100.0"}, {float64(float32(0.1)), "0.10000000149011612"},
		{math.NaN(), "nan"}, {math.Inf(1), "inf"}, {math.Inf(-1), "-inf"},
	} {
		if got := PyFloat(tc.in); got != tc.want {
			t.Errorf("PyFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func sum(a, b float64) float64 { return a + b }

func TestMLflowFileYAMLScalars(t *testing.T) {
	// Each want is what yaml.safe_dump writes for the string.
	for _, tc := range []struct{ in, want string }{
		{"active", "active"}, {"0", "'0'"}, {"", "''"}, {"606783375233873416", "'606783375233873416'"},
		{"file:///tmp/mlruns/0", "file:///tmp/mlruns/0"}, {"wistful-ant-659", "wistful-ant-659"},
		{"yes", "'yes'"}, {"Off", "'Off'"}, {"null", "'null'"}, {"~", "'~'"}, {"1.5", "'1.5'"}, {"1e5", "1e5"},
		{"0x1F", "'0x1F'"}, {"2025-01-02", "'2025-01-02'"}, {"a: b", "'a: b'"}, {"a #b", "'a #b'"},
		{"-lead", "'-lead'"}, {"it's", "it's"}, {"'q'", "'''q'''"}, {" pad", "' pad'"},
		{"two\nlines", `"two\nlines"`}, {"bell\a", `"bell\x07"`}, {"ünï", "ünï"},
	} {
		if got := yamlString(tc.in); got != tc.want {
			t.Errorf("yamlString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func clock(start time.Time) func() time.Time {
	now := start
	return func() time.Time {
		now = now.Add(time.Second)
		return now
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMLflowFileLayout(t *testing.T) {
	t.Setenv("USER", "alice")
	t.Setenv("LOGNAME", "alice")
	root := filepath.Join(t.TempDir(), "mlruns")
	t0 := time.UnixMilli(1_700_000_000_000)
	r, err := Create(Options{Root: root, RunName: "qwen-lora", Tags: map[string]string{"team": "nlp"}, Now: clock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	// The default experiment, as FileStore creates it with the root.
	absRoot, _ := filepath.Abs(root)
	wantExp := "artifact_location: file://" + absRoot + "/0\ncreation_time: 1700000001000\nexperiment_id: '0'\n" +
		"last_update_time: 1700000001000\nlifecycle_stage: active\nname: Default\n"
	if got := read(t, filepath.Join(root, "0", "meta.yaml")); got != wantExp {
		t.Errorf("experiment meta.yaml:\n%s\nwant:\n%s", got, wantExp)
	}
	if st, err := os.Stat(filepath.Join(root, ".trash")); err != nil || !st.IsDir() {
		t.Errorf(".trash folder: %v", err)
	}
	if r.ExperimentID() != "0" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(r.ID()) {
		t.Errorf("experiment %q, run id %q", r.ExperimentID(), r.ID())
	}
	dir := filepath.Join(root, "0", r.ID())
	wantRun := func(end, status string, created bool) string {
		s := "artifact_uri: file://" + dir + "/artifacts\n"
		if created {
			s += "deleted_time: null\n"
		}
		return s + "end_time: " + end + "\nentry_point_name: ''\nexperiment_id: '0'\nlifecycle_stage: active\n" +
			"run_id: " + r.ID() + "\nrun_name: qwen-lora\nrun_uuid: " + r.ID() + "\nsource_name: ''\nsource_type: 4\n" +
			"source_version: ''\nstart_time: 1700000002000\nstatus: " + status + "\ntags: []\nuser_id: alice\n"
	}
	if got := read(t, filepath.Join(dir, "meta.yaml")); got != wantRun("null", "1", true) {
		t.Errorf("run meta.yaml at creation:\n%s\nwant:\n%s", got, wantRun("null", "1", true))
	}
	for _, d := range []string{"metrics", "params", "artifacts", "tags"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("folder %s: %v", d, err)
		}
	}

	params := tracking.FlattenParams(map[string]any{"lora": map[string]any{"r": 16, "alpha": 32}, "lr": 2e-4, "model": "q"})
	if err := r.LogParams(params); err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(1_700_000_100_123)
	for step, loss := range []float64{2.5, 1.0, 1e-5} {
		if err := r.LogMetrics(int64(step+1), map[string]float64{"loss": loss, "eval/loss": loss * 2}, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SetTags(map[string]string{"stage": "sft"}); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "adapter")
	os.MkdirAll(filepath.Join(art, "sub"), 0o755)
	os.WriteFile(filepath.Join(art, "adapter_config.json"), []byte(`{"r":16}`), 0o644)
	os.WriteFile(filepath.Join(art, "sub", "x.bin"), []byte("xx"), 0o644)
	cfgFile := filepath.Join(t.TempDir(), "recipe.yaml")
	os.WriteFile(cfgFile, []byte("lr: 1\n"), 0o644)
	if err := r.LogArtifact(art, "adapter"); err != nil {
		t.Fatal(err)
	}
	if err := r.LogArtifact(cfgFile, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.LogArtifact(cfgFile, "../escape"); err == nil {
		t.Error("an artifact path leaving the run was accepted")
	}
	if err := r.Finish(tracking.StatusFailed); err != nil {
		t.Fatal(err)
	}
	if err := r.LogMetrics(9, map[string]float64{"loss": 1}, ts); err == nil {
		t.Error("logging after Finish succeeded")
	}

	// The files, as FileStore writes them.
	for p, want := range map[string]string{
		"metrics/loss":                          "1700000100123 2.5 1\n1700000100123 1.0 2\n1700000100123 1e-05 3\n",
		"metrics/eval/loss":                     "1700000100123 5.0 1\n1700000100123 2.0 2\n1700000100123 2e-05 3\n",
		"params/lora.r":                         "16",
		"params/lora.alpha":                     "32",
		"params/lr":                             "0.0002",
		"params/model":                          "q",
		"tags/mlflow.runName":                   "qwen-lora",
		"tags/mlflow.user":                      "alice",
		"tags/mlflow.source.type":               "LOCAL",
		"tags/team":                             "nlp",
		"tags/stage":                            "sft",
		"artifacts/adapter/adapter_config.json": `{"r":16}`,
		"artifacts/adapter/sub/x.bin":           "xx",
		"artifacts/recipe.yaml":                 "lr: 1\n",
		"meta.yaml":                             wantRun("1700000003000", "4", false),
	} {
		if got := read(t, filepath.Join(dir, filepath.FromSlash(p))); got != want {
			t.Errorf("%s:\n%q\nwant\n%q", p, got, want)
		}
	}

	// Read back.
	rd, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rd.RunID != r.ID() || rd.RunName != "qwen-lora" || rd.Status != "FAILED" || rd.ExperimentName != "Default" ||
		rd.StartTime != 1_700_000_002_000 || rd.EndTime != 1_700_000_003_000 || rd.ArtifactDir != filepath.Join(dir, "artifacts") {
		t.Errorf("ReadRun info = %+v", rd)
	}
	if !reflect.DeepEqual(rd.Params, params) {
		t.Errorf("params = %v, want %v", rd.Params, params)
	}
	if len(rd.Metrics) != 6 || rd.Metrics[0] != (tracking.Metric{Key: "eval/loss", Value: 5, Timestamp: 1_700_000_100_123, Step: 1}) {
		t.Errorf("metrics = %v", rd.Metrics)
	}
	sum := r.Summary().Sinks[0]
	if sum.Delivered != (tracking.Counts{Metrics: 6, Params: 4, Tags: 6, Artifacts: 2}) {
		t.Errorf("summary = %+v", sum)
	}
}

func TestMLflowFileExperimentsAndResume(t *testing.T) {
	root := t.TempDir()
	a, err := Create(Options{Root: root, Experiment: "sft", RunName: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ExperimentID() == "0" || !regexp.MustCompile(`^[0-9]+$`).MatchString(a.ExperimentID()) {
		t.Fatalf("new experiment id %q", a.ExperimentID())
	}
	exp, err := ReadExperiment(filepath.Join(root, a.ExperimentID()))
	if err != nil || exp.Name != "sft" || exp.Lifecycle != "active" {
		t.Fatalf("experiment = %+v, %v", exp, err)
	}
	b, err := Create(Options{Root: root, Experiment: "sft"})
	if err != nil {
		t.Fatal(err)
	}
	if b.ExperimentID() != a.ExperimentID() {
		t.Errorf("second run went to experiment %s, want %s", b.ExperimentID(), a.ExperimentID())
	}
	if err := a.LogParams(map[string]string{"lr": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(tracking.StatusFinished); err != nil {
		t.Fatal(err)
	}
	// Resume: the run is RUNNING again, params stay immutable.
	c, err := Create(Options{Root: root, RunID: a.ID()})
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := ReadRun(c.Dir())
	if rd.Status != "RUNNING" || rd.RunName != "one" {
		t.Errorf("resumed run: status %s, name %s", rd.Status, rd.RunName)
	}
	if err := c.LogParams(map[string]string{"lr": "1"}); err != nil {
		t.Errorf("logging the same param value again: %v", err)
	}
	if err := c.LogParams(map[string]string{"lr": "2"}); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("changing a param: %v", err)
	}
	if _, err := Create(Options{Root: root, RunID: "feedfacefeedfacefeedfacefeedface"}); err == nil {
		t.Error("resuming an unknown run succeeded")
	}
}
