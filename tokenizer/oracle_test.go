package tokenizer

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/whet-ai/whet/internal/testref"
)

// oracle returns the node binary and the cache directory when the
// reference (the tokenizers Node binding, installed by
// testdata/oracle/fetch.sh) is present, or skips the test saying why.
func oracle(t testing.TB) (node, cache string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testref.Missing(t, "node is not installed: the live comparison with the Hugging Face tokenizers Node binding is skipped (the committed golden files are still checked)")
	}
	cache = testCacheDir()
	if _, err := os.Stat(filepath.Join(cache, "node_modules", "tokenizers", "package.json")); err != nil {
		testref.Missing(t, "the tokenizers Node binding is not installed in %s: run tokenizer/testdata/oracle/fetch.sh (or set WHET_TEST_CACHE) for the live comparison", cache)
	}
	return node, cache
}

// randomStrings makes n test strings from fragments and random characters
// of many scripts, deterministically from seed.
func randomStrings(seed int64, n int) []string {
	rng := rand.New(rand.NewSource(seed))
	frags := []string{" ", "  ", "\n", "\r\n", "\t", " \n", "'s", "'T", "'ll", "'VE", "the", "The", "HELLO", "don't",
		"123", "4567890", "3.14", "<s>", "</s>", "<|endoftext|>", "<|begin_of_text|>", "<|im_start|>", "<mask>", "[DAY]",
		"yesterday", "Yesterday", "ony", "▁", "Ġ", "<0x41>", "😀", "👍🏽", "你好", "é", "e\u0301", "ﬁ", "Ⅻ", "ǅ", "ſ", "İ",
		"ß", "\u00a0", "\u3000", "\u200b", "\u0300", "(", ")", "\"", "...", "--", "_", "@", "#", "x", "Q", "z"}
	ranges := [][2]rune{{0x20, 0x7e}, {0xa0, 0x24f}, {0x300, 0x36f}, {0x370, 0x3ff}, {0x400, 0x4ff}, {0x590, 0x6ff},
		{0x900, 0x97f}, {0xe00, 0xe7f}, {0x1100, 0x11ff}, {0x2000, 0x206f}, {0x2100, 0x22ff}, {0x3000, 0x30ff},
		{0x4e00, 0x4fff}, {0xac00, 0xacff}, {0xfb00, 0xfb4f}, {0xff00, 0xffef}, {0x1d400, 0x1d4ff}, {0x1f300, 0x1f6ff}}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := rng.Intn(12); k >= 0; k-- {
			if rng.Intn(3) == 0 {
				r := ranges[rng.Intn(len(ranges))]
				c := r[0] + rune(rng.Intn(int(r[1]-r[0]+1)))
				if c >= 0xd800 && c < 0xe000 {
					c = 'x'
				}
				b.WriteRune(c)
			} else {
				b.WriteString(frags[rng.Intn(len(frags))])
			}
		}
		out[i] = b.String()
	}
	return out
}

// TestOracleLive regenerates the golden output with the Hugging Face
// tokenizers Node binding, for the committed strings and for random ones
// (seed WHET_ORACLE_SEED, default 1), and compares every tokenizer with it.
func TestOracleLive(t *testing.T) {
	if testing.Short() {
		t.Skip("live oracle comparison skipped in -short mode")
	}
	node, cache := oracle(t)
	seed := int64(1)
	if s := os.Getenv("WHET_ORACLE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("WHET_ORACLE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	var strs []string
	data, err := os.ReadFile("testdata/oracle/strings.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &strs); err != nil {
		t.Fatal(err)
	}
	strs = append(strs, randomStrings(seed, 300)...)
	dir := t.TempDir()
	sp := filepath.Join(dir, "strings.json")
	data, _ = json.Marshal(strs)
	if err := os.WriteFile(sp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "golden")
	testdata, _ := filepath.Abs("testdata")
	cmd := exec.Command(node, "testdata/oracle/golden.js", cache, testdata, out, sp)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(cache, "node_modules"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("golden.js: %v\n%s", err, b)
	}
	for _, gt := range goldenTokenizers(t) {
		t.Run(gt.Name, func(t *testing.T) {
			tok, why := gt.load(t)
			if tok == nil {
				testref.Missing(t, "%s", why)
			}
			data, err := readGzip(filepath.Join(out, gt.Name+".json.gz"))
			if err != nil {
				t.Fatal(err)
			}
			var g goldenFile
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tok, g)
		})
	}
}
