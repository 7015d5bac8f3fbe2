package tracking

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const recipeYAML = `
model: Qwen/Qwen2.5-0.5B
lora:
  r: 16
  alpha: 32
  dropout: 0.05
  target_modules: [q_proj, v_proj]
learning_rate: 2.0e-4
max_steps: 100
bf16: true
eval_data: null
datasets:
  - path: train.jsonl
    format: messages
  - path: extra.jsonl
schedule: {}
tags: []
`

type loraCfg struct {
	R       int      `yaml:"r"`
	Alpha   float64  `yaml:"alpha"`
	Targets []string `yaml:"target_modules"`
	Secret  string   `yaml:"-"`
	hidden  int
}

type base struct {
	Seed int `json:"seed"`
}

type recipe struct {
	base
	Model   string        `yaml:"model"`
	LoRA    *loraCfg      `yaml:"lora"`
	Warmup  time.Duration `yaml:"warmup"`
	NoTag   string
	Nothing *loraCfg `yaml:"nothing"`
}

type cyclic struct {
	Name string
	Next *cyclic
}

func TestTrackFlattenParams(t *testing.T) {
	var fromYAML map[string]any
	if err := yaml.Unmarshal([]byte(recipeYAML), &fromYAML); err != nil {
		t.Fatal(err)
	}
	loop := &cyclic{Name: "a"}
	loop.Next = loop
	for _, tc := range []struct {
		name string
		in   any
		want map[string]string
	}{
		{"yaml recipe", fromYAML, map[string]string{
			"model": "Qwen/Qwen2.5-0.5B", "lora.r": "16", "lora.alpha": "32", "lora.dropout": "0.05",
			"lora.target_modules": `["q_proj","v_proj"]`, "learning_rate": "0.0002", "max_steps": "100", "bf16": "true",
			"eval_data": "null", "datasets.0.path": "train.jsonl", "datasets.0.format": "messages",
			"datasets.1.path": "extra.jsonl", "schedule": "{}", "tags": "[]",
		}},
		{"struct with tags, embedding, pointers", recipe{base: base{Seed: 7}, Model: "m", LoRA: &loraCfg{R: 8, Alpha: 16, Targets: []string{"q"}, Secret: "x", hidden: 1}, Warmup: 90 * time.Second, NoTag: "n"},
			map[string]string{"seed": "7", "model": "m", "lora.r": "8", "lora.alpha": "16", "lora.target_modules": `["q"]`, "warmup": "1m30s", "NoTag": "n", "nothing": "null"}},
		{"scalar", 3.5, map[string]string{"value": "3.5"}},
		{"nil", nil, map[string]string{"value": "null"}},
		{"map with int keys", map[int]any{1: "a", 2: []any{1, true, nil, "s"}}, map[string]string{"1": "a", "2": `[1,true,null,"s"]`}},
		{"time", map[string]any{"at": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, map[string]string{"at": "2025-01-02T03:04:05Z"}},
		{"special floats", map[string]any{"x": []float64{math.NaN(), 1}, "y": math.Inf(1)}, map[string]string{"x": `["NaN",1]`, "y": "+Inf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FlattenParams(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FlattenParams:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	t.Run("cycle ends", func(t *testing.T) {
		got := FlattenParams(loop)
		if len(got) == 0 || got["Name"] != "a" {
			t.Fatalf("FlattenParams(cycle) = %v", got)
		}
		for k, v := range got {
			if strings.Count(k, ".") > maxFlattenDepth+1 {
				t.Errorf("key %q is deeper than the bound", k)
			}
			_ = v
		}
	})
}

func TestTrackSanitizeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"loss", "loss"},
		{"eval/loss", "eval/loss"},
		{"lora.r", "lora.r"},
		{"a b-c_d", "a b-c_d"},
		{"grad:norm", "grad_norm"},
		{"loss(avg)", "loss_avg_"},
		{"a//b", "a__b"},
		{"/abs", "_abs"},
		{"trailing/", "trailing_"},
		{"..", "__"},
		{"", "_"},
		{"größe", "größe"},
		{strings.Repeat("k", 300), strings.Repeat("k", 241) + "~"},
	} {
		got := SanitizeKey(tc.in)
		if strings.HasSuffix(tc.want, "~") {
			if !strings.HasPrefix(got, tc.want) || len(got) != MaxKeyLength {
				t.Errorf("SanitizeKey(%d chars) = %q (%d chars), want prefix %q and %d chars", len(tc.in), got, len(got), tc.want, MaxKeyLength)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("SanitizeKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !validKey(got) {
			t.Errorf("SanitizeKey(%q) = %q is not valid", tc.in, got)
		}
	}
	if SanitizeKey(strings.Repeat("a", 300)) == SanitizeKey(strings.Repeat("a", 299)+"b") {
		t.Error("two long keys sanitize alike")
	}
}

func TestTrackSplitRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     map[string]any
		step   int64
		want   map[string]float64
		stepOK bool
	}{
		{"train line", map[string]any{"step": 10, "loss": 1.5, "lr": 2e-4, "grad_norm": nil, "tokens": 512, "skipped": false, "epoch": 0},
			10, map[string]float64{"loss": 1.5, "lr": 2e-4, "tokens": 512, "skipped": 0, "epoch": 0}, true},
		{"eval line from JSON", map[string]any{"step": 20.0, "eval_loss": 0.9, "note": "x"}, 20, map[string]float64{"eval_loss": 0.9}, true},
		{"no step", map[string]any{"loss": 1.0}, 0, map[string]float64{"loss": 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, got, ok := SplitRecord(tc.in)
			if step != tc.step || ok != tc.stepOK || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SplitRecord = %d, %v, %v; want %d, %v, %v", step, got, ok, tc.step, tc.want, tc.stepOK)
			}
		})
	}
}

func TestTrackParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Status
		ok   bool
	}{
		{"FINISHED", StatusFinished, true}, {"failed", StatusFailed, true}, {" Killed ", StatusKilled, true},
		{"RUNNING", "", false}, {"", "", false},
	} {
		got, err := ParseStatus(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseStatus(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// recorder is a sink that records calls and can fail or panic.
type recorder struct {
	name    string
	fail    error
	panics  bool
	params  []map[string]string
	metrics []int64
	tags    int
	arts    int
	status  Status
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) act() error {
	if r.panics {
		panic("sink exploded")
	}
	return r.fail
}

func (r *recorder) LogParams(p map[string]string) error {
	r.params = append(r.params, p)
	return r.act()
}
func (r *recorder) LogMetrics(step int64, _ map[string]float64, _ time.Time) error {
	r.metrics = append(r.metrics, step)
	return r.act()
}
func (r *recorder) SetTags(map[string]string) error { r.tags++; return r.act() }
func (r *recorder) LogArtifact(string, string) error {
	r.arts++
	return r.act()
}
func (r *recorder) Finish(s Status) error { r.status = s; return r.act() }
func (r *recorder) Summary() Summary {
	return Summary{Sinks: []SinkSummary{{Sink: r.name, Delivered: Counts{Metrics: int64(len(r.metrics))}}}}
}

func TestTrackMulti(t *testing.T) {
	boom := errors.New("server down")
	bad := &recorder{name: "bad", fail: boom}
	crash := &recorder{name: "crash", panics: true}
	good := &recorder{name: "good"}
	m := Multi(bad, nil, crash, good)
	for _, tc := range []struct {
		op   string
		call func() error
	}{
		{"log params", func() error { return m.LogParams(map[string]string{"a": "1"}) }},
		{"log metrics", func() error { return m.LogMetrics(3, map[string]float64{"loss": 1}, time.Time{}) }},
		{"set tags", func() error { return m.SetTags(map[string]string{"t": "v"}) }},
		{"log artifact", func() error { return m.LogArtifact("f", "") }},
		{"finish", func() error { return m.Finish(StatusFinished) }},
	} {
		err := tc.call()
		if err == nil {
			t.Fatalf("%s: no error from the failing sinks", tc.op)
		}
		for _, want := range []string{"bad: " + tc.op + ": server down", "crash: " + tc.op + ": panic: sink exploded"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", tc.op, err, want)
			}
		}
		if !errors.Is(err, boom) {
			t.Errorf("%s: error does not wrap the sink's error", tc.op)
		}
	}
	if len(good.params) != 1 || len(good.metrics) != 1 || good.tags != 1 || good.arts != 1 || good.status != StatusFinished {
		t.Errorf("the healthy sink missed calls: %+v", good)
	}
	s := Summarize(m)
	if len(s.Sinks) != 3 || s.Sinks[2].Sink != "good" || s.Sinks[2].Delivered.Metrics != 1 {
		t.Errorf("Summary = %+v", s)
	}
	if err := Multi(good).LogMetrics(4, nil, time.Time{}); err != nil {
		t.Errorf("healthy sink alone: %v", err)
	}
	if got := Summarize(Nop{}); len(got.Sinks) != 0 {
		t.Errorf("Summarize(Nop) = %+v", got)
	}
}

func TestTrackSummaryString(t *testing.T) {
	s := Summary{Sinks: []SinkSummary{
		{Sink: "mlflow", Target: "http://h/#/experiments/1/runs/r", Delivered: Counts{Metrics: 10}, Pending: Counts{Metrics: 5}, Spool: "/sp", LastError: "HTTP 503"},
		{Sink: "mlflow-file", Target: "mlruns/0/r", Delivered: Counts{Params: 2}},
	}}
	out := s.String()
	for _, want := range []string{"delivered 10 metrics", "pending 5 metrics", "whet mlflow-sync --spool /sp", "last error: HTTP 503", "mlflow-file mlruns/0/r: delivered 0 metrics, 2 params"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary %q lacks %q", out, want)
		}
	}
	if s.Pending() != 5 {
		t.Errorf("Pending() = %d", s.Pending())
	}
}
