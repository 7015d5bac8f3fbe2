package progress

import (
	"bytes"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances by step on every call.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

func newTestBar(buf *bytes.Buffer, total int, terminal bool) *Bar {
	b := New(buf, total, terminal)
	clk := &fakeClock{t: time.Unix(1700000000, 0), step: time.Second}
	b.now = clk.now
	b.memory = func() uint64 { return 1_234_000_000 }
	return b
}

type update struct {
	step            int
	loss, lr, tokps float64
}

type action struct {
	u   *update
	log string
}

func steps(from, to int) []action {
	var as []action
	for s := from; s <= to; s++ {
		as = append(as, action{u: &update{s, 3 - float64(s)/10, 2e-4, 1234}})
	}
	return as
}

func TestPlainLines(t *testing.T) {
	tests := []struct {
		name    string
		total   int
		every   int // 0: default
		actions []action
		want    []string
	}{
		{
			name:    "every 10 of 25, final on last step",
			total:   25,
			actions: steps(1, 25),
			want: []string{
				"step 10/25 | loss 2.0000 | lr 2e-4 | 1234 tok/s | ETA 15s | mem 1.2 GB",
				"step 20/25 | loss 1.0000 | lr 2e-4 | 1234 tok/s | ETA 5s | mem 1.2 GB",
				"step 25/25 | loss 0.5000 | lr 2e-4 | 1234 tok/s | ETA 0s | mem 1.2 GB",
			},
		},
		{
			name:    "last step on a multiple is printed once",
			total:   20,
			actions: steps(1, 20),
			want: []string{
				"step 10/20 | loss 2.0000 | lr 2e-4 | 1234 tok/s | ETA 10s | mem 1.2 GB",
				"step 20/20 | loss 1.0000 | lr 2e-4 | 1234 tok/s | ETA 0s | mem 1.2 GB",
			},
		},
		{
			name:    "Done prints unprinted last update",
			total:   100,
			actions: steps(1, 13),
			want: []string{
				"step 10/100 | loss 2.0000 | lr 2e-4 | 1234 tok/s | ETA 1m30s | mem 1.2 GB",
				"step 13/100 | loss 1.7000 | lr 2e-4 | 1234 tok/s | ETA 1m27s | mem 1.2 GB",
			},
		},
		{
			name:    "custom every",
			total:   6,
			every:   3,
			actions: steps(1, 6),
			want: []string{
				"step 3/6 | loss 2.7000 | lr 2e-4 | 1234 tok/s | ETA 3s | mem 1.2 GB",
				"step 6/6 | loss 2.4000 | lr 2e-4 | 1234 tok/s | ETA 0s | mem 1.2 GB",
			},
		},
		{
			name:  "jumping steps print when crossing a multiple",
			total: 30,
			actions: []action{
				{u: &update{4, 2, 1e-4, 10}}, {u: &update{8, 2, 1e-4, 10}},
				{u: &update{12, 2, 1e-4, 10}}, {u: &update{16, 2, 1e-4, 10}},
			},
			want: []string{
				// anchor at step 4; 0.25 s/step after it
				"step 12/30 | loss 2.0000 | lr 1e-4 | 10 tok/s | ETA 5s | mem 1.2 GB", // 4.5s rounds up
				"step 16/30 | loss 2.0000 | lr 1e-4 | 10 tok/s | ETA 4s | mem 1.2 GB", // 3.5s rounds up
			},
		},
		{
			name:    "resumed run measures ETA from first update",
			total:   1000,
			actions: steps(501, 510),
			want: []string{
				"step 510/1000 | loss -48.0000 | lr 2e-4 | 1234 tok/s | ETA 8m10s | mem 1.2 GB",
			},
		},
		{
			name:    "unknown total",
			total:   0,
			actions: steps(1, 10),
			want: []string{
				"step 10 | loss 2.0000 | lr 2e-4 | 1234 tok/s | ETA ? | mem 1.2 GB",
			},
		},
		{
			name:  "log lines interleave",
			total: 10,
			every: 5,
			actions: append(append(append(steps(1, 5), action{log: "eval loss 1.2345"}),
				steps(6, 10)...), action{log: "saved checkpoint\n"}),
			want: []string{
				"step 5/10 | loss 2.5000 | lr 2e-4 | 1234 tok/s | ETA 5s | mem 1.2 GB",
				"eval loss 1.2345",
				"step 10/10 | loss 2.0000 | lr 2e-4 | 1234 tok/s | ETA 0s | mem 1.2 GB",
				"saved checkpoint",
			},
		},
		{
			name:  "odd values",
			total: 2,
			every: 1,
			actions: []action{
				{u: &update{1, math.NaN(), 0, math.NaN()}},
				{u: &update{2, math.Inf(1), 3.3333e-5, -1}},
			},
			want: []string{
				"step 1/2 | loss NaN | lr 0 | ? tok/s | ETA ? | mem 1.2 GB",
				"step 2/2 | loss +Inf | lr 3.33e-5 | ? tok/s | ETA 0s | mem 1.2 GB",
			},
		},
		{
			name:    "past total and negative steps",
			total:   2,
			every:   1,
			actions: []action{{u: &update{-5, 1, 1e-3, 1}}, {u: &update{3, 1, 1e-3, 1}}},
			want: []string{
				"step 0/2 | loss 1.0000 | lr 1e-3 | 1 tok/s | ETA ? | mem 1.2 GB",
				"step 3/2 | loss 1.0000 | lr 1e-3 | 1 tok/s | ETA 0s | mem 1.2 GB",
			},
		},
		{
			name:    "nothing happens",
			total:   10,
			actions: nil,
			want:    nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			b := newTestBar(&buf, tt.total, false)
			if tt.every != 0 {
				b.SetEvery(tt.every)
			}
			for _, a := range tt.actions {
				if a.u != nil {
					b.Update(a.u.step, a.u.loss, a.u.lr, a.u.tokps)
				} else {
					b.Log(a.log)
				}
			}
			b.Done()
			b.Done()
			b.Update(99, 0, 0, 0) // ignored after Done
			var got []string
			if s := strings.TrimSuffix(buf.String(), "\n"); s != "" {
				got = strings.Split(s, "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	lrs := []struct {
		in   float64
		want string
	}{
		{2e-4, "2e-4"}, {1.5e-5, "1.5e-5"}, {3.333e-4, "3.33e-4"}, {1e-3, "1e-3"},
		{0.1, "1e-1"}, {1, "1e0"}, {12, "1.2e1"}, {0, "0"}, {-2e-4, "-2e-4"},
		{1e-10, "1e-10"}, {9.999e-5, "1e-4"}, {math.NaN(), "NaN"},
	}
	for _, tt := range lrs {
		if got := FormatLR(tt.in); got != tt.want {
			t.Errorf("FormatLR(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	bytesCases := []struct {
		in   uint64
		want string
	}{
		{0, "?"}, {512, "512 B"}, {2048, "2 kB"}, {830_400_000, "830 MB"},
		{1_200_000_000, "1.2 GB"}, {81_000_000_000, "81.0 GB"}, {2_500_000_000_000, "2.5 TB"},
	}
	for _, tt := range bytesCases {
		if got := FormatBytes(tt.in); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	lines := []struct {
		step, total int
		eta         time.Duration
		known       bool
		want        string
	}{
		{10, 100, 62 * time.Second, true, "step 10/100 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA 1m2s | mem 1.2 GB"},
		{10, 100, 62*time.Second + 400*time.Millisecond, true, "step 10/100 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA 1m2s | mem 1.2 GB"},
		{10, 0, 0, false, "step 10 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA ? | mem 1.2 GB"},
		{10, 100, 26 * time.Hour, true, "step 10/100 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA 26h0m0s | mem 1.2 GB"},
	}
	for _, tt := range lines {
		if got := Line(tt.step, tt.total, 2.34564, 2e-4, 1234.4, tt.eta, tt.known, 1_200_000_000); got != tt.want {
			t.Errorf("Line = %q, want %q", got, tt.want)
		}
	}
}

func TestParseStatm(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"12345 678 90 1 0 100 0\n", 678, true},
		{"1 2", 2, true},
		{"1", 0, false},
		{"", 0, false},
		{"1 x", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseStatm(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseStatm(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if residentBytes() == 0 {
		t.Error("residentBytes() = 0")
	}
	if goRuntimeBytes() == 0 {
		t.Error("goRuntimeBytes() = 0")
	}
}

func TestTerminalMode(t *testing.T) {
	tests := []struct {
		name     string
		total    int
		run      func(b *Bar)
		contains []string
	}{
		{"full run", 20, func(b *Bar) {
			for s := 1; s <= 20; s++ {
				b.Update(s, 2.5, 2e-4, 1000)
				if s == 10 {
					b.Log("eval loss 1.2345")
				}
			}
		}, []string{"step 20/20", "loss 2.5000", "lr 2e-4", "1000 tok/s", "ETA 0s", "mem ", "eval loss 1.2345"}},
		{"stopped early", 100, func(b *Bar) {
			b.Update(1, 3, 1e-4, 10)
			time.Sleep(250 * time.Millisecond) // let the bar refresh once
			b.Update(2, 2.9, 1e-4, 10)
		}, []string{"step 2/100", "loss 2.9000"}},
		{"unknown total", 0, func(b *Bar) {
			b.Update(7, 1, 1e-4, 10)
		}, []string{"step 7", "loss 1.0000"}},
		{"log after completion", 3, func(b *Bar) {
			for s := 1; s <= 3; s++ {
				b.Update(s, 1, 1e-4, 10)
			}
			b.Log("after last step")
		}, []string{"step 3/3", "after last step"}},
		{"no updates", 10, func(*Bar) {}, []string{"waiting for first step"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			b := newTestBar(&buf, tt.total, true)
			tt.run(b)
			finished := make(chan struct{})
			go func() {
				b.Done()
				b.Done()
				b.Update(1, 0, 0, 0) // ignored
				b.Log("after Done")
				close(finished)
			}()
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("Done did not return")
			}
			out := buf.String()
			if out == "" {
				t.Fatal("terminal mode wrote nothing")
			}
			for _, s := range append(tt.contains, "after Done") {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%q", s, out)
				}
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		var buf bytes.Buffer
		b := New(&buf, 400, terminal)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					b.Update(g*100+i+1, 1, 1e-4, 1)
					if i%25 == 0 {
						b.Log("log line")
					}
				}
			}()
		}
		wg.Wait()
		b.Done()
		if buf.Len() == 0 {
			t.Errorf("terminal=%v: no output", terminal)
		}
	}
}

func TestNilWriterAndIsTerminal(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		b := New(nil, 5, terminal)
		b.Update(5, 1, 1e-4, 1)
		b.Log("x")
		b.Done()
	}
	if IsTerminal(nil) {
		t.Error("IsTerminal(nil) = true")
	}
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if IsTerminal(f) {
		t.Error("IsTerminal(regular file) = true")
	}
}
