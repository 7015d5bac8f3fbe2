package data

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeAlpaca writes about size bytes of alpaca records to path: English-
// like text with made-up words, so that the tokenizer's word cache does not
// see everything.
func writeAlpaca(tb testing.TB, path string, size int64) int {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	syl := []string{"ka", "ter", "on", "mi", "res", "lo", "vin", "the", "and", "ing", "pre", "con", "ex", "ly", "tion", "st", "qu", "ar", "el", "un"}
	common := []string{"the", "of", "and", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "at", "by", "this", "have", "from", "or"}
	sentence := func(words int) string {
		var b strings.Builder
		for i := range words {
			if i > 0 {
				b.WriteByte(' ')
			}
			if rng.IntN(2) == 0 {
				b.WriteString(common[rng.IntN(len(common))])
				continue
			}
			for k := 1 + rng.IntN(3); k > 0; k-- {
				b.WriteString(syl[rng.IntN(len(syl))])
			}
		}
		b.WriteString(".")
		return b.String()
	}
	var written int64
	n := 0
	for written < size {
		rec := map[string]string{
			"instruction": sentence(8 + rng.IntN(20)),
			"input":       "",
			"output":      sentence(20 + rng.IntN(120)),
		}
		if rng.IntN(3) == 0 {
			rec["input"] = sentence(5 + rng.IntN(30))
		}
		line, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(append(line, '\n'))
		written += int64(len(line) + 1)
		n++
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkPipeline measures examples per second through reading,
// tokenization (on runtime.NumCPU() goroutines) and packing of a 100 MB
// alpaca .jsonl, and the peak heap in use meanwhile. Run it once:
//
//	go test ./data -run '^$' -bench Pipeline -benchtime=1x
//
// WHET_BENCH_MB sets another size.
func BenchmarkPipeline(b *testing.B) {
	path := filepath.Join(b.TempDir(), "alpaca.jsonl")
	size := int64(100) << 20
	if s := os.Getenv("WHET_BENCH_MB"); s != "" { // a smaller file for a quick look
		mb, err := strconv.Atoi(s)
		if err != nil || mb <= 0 {
			b.Fatalf("WHET_BENCH_MB=%q: want a positive number of megabytes", s)
		}
		size = int64(mb) << 20
	}
	records := writeAlpaca(b, path, size)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	m := plainModel(b)
	cfg := Config{Files: []string{path}, SequenceLen: 2048, Packing: true, BatchSize: 8, Shuffle: true, Seed: 1}
	runtime.GC()

	// Peak heap in use (runtime.MemStats.HeapInuse: object bytes plus
	// the free space of spans in use), sampled through runtime/metrics,
	// which does not stop the world.
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			peak = max(peak, samples[0].Value.Uint64()+samples[1].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	examples, tokens := 0, 0
	for range b.N {
		d, err := Open(cfg, m)
		if err != nil {
			b.Fatal(err)
		}
		it, err := d.Train(nil)
		if err != nil {
			b.Fatal(err)
		}
		for {
			bt, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			examples += len(bt.Sources)
			tokens += bt.B * bt.T
		}
		it.Close()
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	close(stop)
	wg.Wait()
	if examples != records*b.N {
		b.Fatalf("%d examples from %d records", examples, records*b.N)
	}
	b.ReportMetric(float64(examples)/elapsed, "examples/s")
	b.ReportMetric(float64(tokens)/elapsed, "tokens/s")
	b.ReportMetric(float64(st.Size())*float64(b.N)/elapsed/1e6, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(runtime.NumCPU()), "workers")
}
