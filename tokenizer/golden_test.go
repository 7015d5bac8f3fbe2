package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/whet-ai/whet/internal/testref"
)

// goldenCase is one string of a golden file written by
// testdata/oracle/golden.js with the Hugging Face tokenizers Node binding.
type goldenCase struct {
	S          string    `json:"s"`
	IDs        []int     `json:"ids"`
	IDsSpecial []int     `json:"ids_special"`
	Offsets    [][2]int  `json:"offsets"`
	Decode     string    `json:"decode"`
	DecodeSkip *string   `json:"decode_skip"`
	_          [0]func() // not comparable
}

type goldenFile struct {
	Binding  string         `json:"binding"`
	AddedIDs map[string]int `json:"added_ids"`
	Cases    []goldenCase   `json:"cases"`
}

// goldenTokenizer is a tokenizer checked against its golden file
// testdata/golden/NAME.json. It is one of testdata/oracle/tokenizers.json
// (Cache: a large real tokenizer.json read from the npm cache that
// testdata/oracle/fetch.sh fills; Local: a small file of testdata/) or of
// testdata/variants.json (built from a small file by buildVariant).
type goldenTokenizer struct {
	Name  string `json:"name"`
	Cache string `json:"cache"`
	Local string `json:"local"`
	// For variants:
	Base          string                     `json:"base"`
	Set           map[string]json.RawMessage `json:"set"`
	MergesAsPairs bool                       `json:"merges_as_pairs"`
}

// goldenTokenizers lists every tokenizer with a golden file.
func goldenTokenizers(t testing.TB) []goldenTokenizer {
	var list, variants []goldenTokenizer
	for _, f := range []struct {
		path string
		into *[]goldenTokenizer
	}{{"testdata/oracle/tokenizers.json", &list}, {"testdata/variants.json", &variants}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, f.into); err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
	}
	return append(list, variants...)
}

// testCacheDir is where fetch.sh installs the Node packages.
func testCacheDir() string {
	if d := os.Getenv("WHET_TEST_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "whet-test")
}

// buildVariant applies a variant of testdata/variants.json to its base
// file, as testdata/oracle/variant.js does.
func buildVariant(g goldenTokenizer) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join("testdata", g.Base))
	if err != nil {
		return nil, err
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(g.Set) {
		var v any
		if err := json.Unmarshal(g.Set[k], &v); err != nil {
			return nil, err
		}
		parts := strings.Split(k, ".")
		o := root
		for _, p := range parts[:len(parts)-1] {
			o = o[p].(map[string]any)
		}
		o[parts[len(parts)-1]] = v
	}
	if g.MergesAsPairs {
		model := root["model"].(map[string]any)
		ms := model["merges"].([]any)
		for i, m := range ms {
			if s, ok := m.(string); ok {
				a, b, _ := strings.Cut(s, " ")
				ms[i] = []any{a, b}
			}
		}
	}
	return json.Marshal(root)
}

// load returns the tokenizer, or "" with the reason it is absent.
func (g goldenTokenizer) load(t testing.TB) (*Tokenizer, string) {
	t.Helper()
	var p string
	switch {
	case g.Base != "":
		data, err := buildVariant(g)
		if err != nil {
			t.Fatalf("variant %s: %v", g.Name, err)
		}
		tok, err := Parse(data, g.Name)
		if err != nil {
			t.Fatal(err)
		}
		return tok, ""
	case g.Local != "":
		p = filepath.Join("testdata", g.Local)
	default:
		p = filepath.Join(testCacheDir(), g.Cache)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Sprintf("%s is not installed (%v); run tokenizer/testdata/oracle/fetch.sh to fetch the real tokenizers", g.Cache, err)
		}
	}
	tok, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok, ""
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(z)
}

func loadGolden(t testing.TB, name string) goldenFile {
	t.Helper()
	data, err := readGzip(filepath.Join("testdata", "golden", name+".json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	return g
}

// charOffsets converts byte offsets in s to character offsets, as the
// Rust library's BytesToCharOffsetConverter does.
func charOffsets(s string, offs [][2]int) [][2]int {
	idx := make(map[int]int, len(s))
	i := 0
	for b, r := range s {
		for k := 0; k < utf8.RuneLen(r); k++ {
			idx[b+k] = i
		}
		i++
	}
	// Our offsets are trimmed in bytes after the fact; an empty span at
	// the end of the text is the Rust library's (n, n).
	idx[len(s)] = i
	out := make([][2]int, len(offs))
	for k, o := range offs {
		st, ok1 := idx[o[0]]
		en, ok2 := idx[o[1]]
		switch {
		case ok1 && ok2:
			out[k] = [2]int{st, en}
		case ok1:
			last, ok := idx[o[1]-1]
			if !ok {
				last = st
			}
			out[k] = [2]int{st, last + 1}
		default:
			out[k] = o
		}
	}
	return out
}

// checkGolden compares tok with every case of g and reports the first
// few differences.
func checkGolden(t *testing.T, tok *Tokenizer, g goldenFile) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 15 {
			t.Errorf(format, args...)
		}
	}
	for _, c := range g.Cases {
		ids := tok.Encode(c.S, false)
		if ids == nil {
			ids = []int{}
		}
		if !reflect.DeepEqual(ids, c.IDs) {
			report("Encode(%q, false) = %v, want %v", c.S, ids, c.IDs)
			continue
		}
		want := c.IDsSpecial
		if want == nil {
			want = c.IDs
		}
		idsSp := tok.Encode(c.S, true)
		if idsSp == nil {
			idsSp = []int{}
		}
		if !reflect.DeepEqual(idsSp, want) {
			report("Encode(%q, true) = %v, want %v", c.S, idsSp, want)
			continue
		}
		e := tok.EncodeWithOffsets(c.S, false)
		if !reflect.DeepEqual(e.IDs, ids) && !(len(e.IDs) == 0 && len(ids) == 0) {
			report("EncodeWithOffsets(%q).IDs = %v, Encode = %v", c.S, e.IDs, ids)
			continue
		}
		if got := charOffsets(c.S, e.Offsets); len(got)+len(c.Offsets) > 0 && !reflect.DeepEqual(got, c.Offsets) {
			report("EncodeWithOffsets(%q) char offsets = %v, want %v", c.S, got, c.Offsets)
		}
		if got := tok.Decode(want, false); got != c.Decode {
			report("Decode(%v, false) = %q, want %q", want, got, c.Decode)
		}
		wantSkip := c.Decode
		if c.DecodeSkip != nil {
			wantSkip = *c.DecodeSkip
		}
		if got := tok.Decode(want, true); got != wantSkip {
			report("Decode(%v, true) = %q, want %q", want, got, wantSkip)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d strings differ from %s", bad, len(g.Cases), g.Binding)
	}
}

// TestGolden compares every tokenizer with the golden output of the
// Hugging Face tokenizers library.
func TestGolden(t *testing.T) {
	for _, gt := range goldenTokenizers(t) {
		t.Run(gt.Name, func(t *testing.T) {
			tok, why := gt.load(t)
			if tok == nil {
				testref.Missing(t, "%s", why)
			}
			g := loadGolden(t, gt.Name)
			for content, want := range g.AddedIDs {
				if got, ok := tok.TokenToID(content); !ok || got != want {
					t.Errorf("TokenToID(%q) = %d, %v; want %d", content, got, ok, want)
				}
			}
			checkGolden(t, tok, g)
		})
	}
}

var _ = strings.TrimSpace
