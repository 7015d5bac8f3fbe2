package data

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mixedData writes a dataset of alpaca records spread over a .jsonl, a
// .json, a .csv and a .parquet-free set of files, with a few invalid
// records, and returns its directory.
func mixedData(t *testing.T) string {
	dir := t.TempDir()
	rec := func(i int) map[string]any {
		return map[string]any{"instruction": fmt.Sprintf("Task %d: %s", i, strings.Repeat("think ", i%5)), "output": fmt.Sprintf("Result %d %s", i, strings.Repeat("yes ", i%7))}
	}
	var a []any
	for i := range 23 {
		a = append(a, rec(i))
	}
	content := jsonl(t, a...)
	content = strings.Replace(content, "\n", "\n{broken\n", 1) // an invalid record
	writeFile(t, dir, "a.jsonl", content)
	var b []any
	for i := 100; i < 111; i++ {
		b = append(b, rec(i))
	}
	arr, err := json.MarshalIndent(b, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "b.json", string(arr))
	var c strings.Builder
	c.WriteString("instruction,output\n")
	for i := 200; i < 209; i++ {
		r := rec(i)
		fmt.Fprintf(&c, "%q,%q\n", r["instruction"], r["output"])
	}
	writeFile(t, dir, "c.csv", c.String())
	return dir
}

// TestResume checks that an iterator restored from the State saved after
// any batch returns exactly the batches the original returned next.
func TestResume(t *testing.T) {
	m := llama3Model(t)
	dir := mixedData(t)
	for _, tc := range []struct {
		name string
		set  func(c *Config)
	}{
		{"packed, shuffled, 3 epochs", func(c *Config) {
			c.Packing, c.BatchSize, c.Shuffle, c.Epochs, c.ShuffleWindow, c.SequenceLen = true, 2, true, 3, 4, 160
		}},
		{"padded", func(c *Config) { c.BatchSize, c.Epochs = 3, 2 }},
		{"bucketed, shuffled", func(c *Config) {
			c.BatchSize, c.LengthBucketing, c.BucketWindow, c.Shuffle, c.Epochs, c.ShuffleWindow = 2, true, 3, true, 2, 5
		}},
		{"split text, packed", func(c *Config) {
			c.Format, c.Fields = FormatText, map[string]string{"text": "instruction"}
			c.Packing, c.BatchSize, c.SequenceLen, c.Shuffle, c.Epochs = true, 3, 6, true, 2
		}},
		{"eval fraction held out", func(c *Config) {
			c.EvalFraction, c.Shuffle, c.BatchSize, c.Packing, c.ShuffleWindow = 0.3, true, 2, true, 3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(dir)
			cfg.SkipInvalid, cfg.Seed = true, 7
			tc.set(&cfg)
			d := openDS(t, cfg, m)
			it, err := d.Train(nil)
			if err != nil {
				t.Fatal(err)
			}
			var batches []*Batch
			var states []State
			for {
				st := it.State()
				b, err := it.Next()
				if err != nil {
					break
				}
				states = append(states, st)
				batches = append(batches, b)
			}
			final := it.State()
			mid := map[string]bool{}
			for _, st := range states {
				mid["piece"] = mid["piece"] || st.Position.Piece > 0
				mid["window"] = mid["window"] || st.Position.Window.Record > 0
				mid["skip"] = mid["skip"] || st.SkipBatches > 0
			}
			switch {
			case cfg.Format == FormatText && !mid["piece"]:
				t.Error("no state falls inside a split record")
			case cfg.ShuffleWindow > 0 && !mid["window"]:
				t.Error("no state falls in a later shuffle window")
			case cfg.LengthBucketing && !mid["skip"]:
				t.Error("no state falls inside a bucketing window")
			}
			if len(batches) < 4 {
				t.Fatalf("only %d batches", len(batches))
			}
			epochs := map[int]bool{}
			for _, b := range batches {
				epochs[b.Epoch] = true
			}
			if len(epochs) != max(cfg.Epochs, 1) {
				t.Errorf("batches of epochs %v, want %d epochs", epochs, cfg.Epochs)
			}
			for i, st := range states {
				// The state goes through JSON, as it would in a checkpoint.
				js, err := json.Marshal(st)
				if err != nil {
					t.Fatal(err)
				}
				var back State
				if err := json.Unmarshal(js, &back); err != nil {
					t.Fatal(err)
				}
				// A new Dataset, as after a restart.
				r, err := openDS(t, cfg, m).Train(&back)
				if err != nil {
					t.Fatalf("restore before batch %d (%s): %v", i, js, err)
				}
				rest := drain(t, r)
				if !reflect.DeepEqual(rest, batches[i:]) {
					t.Fatalf("restored before batch %d (%s): %d batches differ from the %d that followed", i, js, len(rest), len(batches[i:]))
				}
				if got := r.State(); !reflect.DeepEqual(got, final) {
					t.Fatalf("restored before batch %d: final state %+v, want %+v", i, got, final)
				}
			}
			if final.Stats.Skipped != int64(cfg.Epochs*1) && final.Stats.Skipped != int64(max(cfg.Epochs, 1)) {
				t.Errorf("skipped %d invalid records over %d epochs, want one per epoch", final.Stats.Skipped, cfg.Epochs)
			}
		})
	}
}

// TestShuffle checks that the order is a function of the seed: the same
// seed gives the same batches (whatever the number of workers), another
// seed and another epoch give other orders, and each epoch holds every
// example once.
func TestShuffle(t *testing.T) {
	m := llama3Model(t)
	dir := mixedData(t)
	run := func(seed uint64, workers int) [][]Pos {
		cfg := config(dir)
		cfg.SkipInvalid, cfg.Shuffle, cfg.Seed, cfg.Epochs, cfg.Workers, cfg.ShuffleWindow = true, true, seed, 2, workers, 8
		it, err := openDS(t, cfg, m).Train(nil)
		if err != nil {
			t.Fatal(err)
		}
		order := make([][]Pos, 2)
		for _, b := range drain(t, it) {
			order[b.Epoch] = append(order[b.Epoch], b.Sources...)
		}
		return order
	}
	a, b, c := run(1, 1), run(1, 5), run(2, 2)
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed with 1 and 5 workers gave different orders")
	}
	if reflect.DeepEqual(a[0], c[0]) {
		t.Error("seeds 1 and 2 gave the same order")
	}
	if reflect.DeepEqual(a[0], a[1]) {
		t.Error("epochs 0 and 1 have the same order")
	}
	for e, order := range a {
		seen := map[Pos]bool{}
		for _, p := range order {
			seen[p] = true
		}
		if len(seen) != 43 || len(order) != 43 {
			t.Errorf("epoch %d: %d examples, %d distinct; want 43", e, len(order), len(seen))
		}
	}
	// In order without shuffling.
	cfg := config(dir)
	cfg.SkipInvalid = true
	exs, _ := examples(t, cfg, m)
	files := []string{"a.jsonl", "b.json", "c.csv"}
	prev := Pos{File: filepath.Join(dir, files[0])}
	for _, ex := range exs {
		if ex.Source.File == prev.File && ex.Source.Line <= prev.Line {
			t.Fatalf("unshuffled order: %v after %v", ex.Source, prev)
		}
		prev = ex.Source
	}
}

// TestEvalSplit checks the held-out fraction: deterministic, disjoint
// from the training records, and together with them every record.
func TestEvalSplit(t *testing.T) {
	m := llama3Model(t)
	dir := mixedData(t)
	cfg := config(dir)
	cfg.SkipInvalid, cfg.EvalFraction, cfg.Seed, cfg.Shuffle = true, 0.25, 3, true
	sources := func(it *Iterator, err error) map[Pos]bool {
		if err != nil {
			t.Fatal(err)
		}
		out := map[Pos]bool{}
		for _, b := range drain(t, it) {
			for _, s := range b.Sources {
				out[s] = true
			}
		}
		return out
	}
	d := openDS(t, cfg, m)
	train, eval := sources(d.Train(nil)), sources(d.Eval())
	again := sources(openDS(t, cfg, m).Eval())
	if !reflect.DeepEqual(eval, again) {
		t.Error("the eval split differs between two runs")
	}
	for p := range eval {
		if train[p] {
			t.Errorf("%v is in both splits", p)
		}
	}
	if len(train)+len(eval) != 43 || len(eval) < 4 || len(eval) > 20 {
		t.Errorf("%d training and %d eval records, want 43 in all, about a quarter for eval", len(train), len(eval))
	}
	// Separate eval files.
	cfg.EvalFraction = 0
	cfg.EvalFiles = []string{filepath.Join(dir, "c.csv")}
	if ev := sources(openDS(t, cfg, m).Eval()); len(ev) != 9 {
		t.Errorf("eval file: %d records, want 9", len(ev))
	}
	cfg.EvalFiles = nil
	if _, err := openDS(t, cfg, m).Eval(); err != ErrNoEval {
		t.Errorf("no eval data: %v", err)
	}
}

// TestStateMismatch checks that a state is refused by another dataset.
func TestStateMismatch(t *testing.T) {
	m := llama3Model(t)
	dir := mixedData(t)
	cfg := config(dir)
	cfg.SkipInvalid = true
	it, err := openDS(t, cfg, m).Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	st := it.State()
	cfg.SequenceLen++
	if _, err := openDS(t, cfg, m).Train(&st); err == nil || !strings.Contains(err.Error(), "saved for another dataset") {
		t.Errorf("restoring into another configuration: %v", err)
	}
	cfg.SequenceLen--
	cfg.Epochs = 5 // more epochs may be asked for on resume
	if _, err := openDS(t, cfg, m).Train(&st); err != nil {
		t.Errorf("restoring with more epochs: %v", err)
	}
	st.Version = 99
	if _, err := openDS(t, cfg, m).Train(&st); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("restoring another version: %v", err)
	}
}
