package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSequenceComponents checks the Sequence form of each component kind:
// a valid one parses and encodes like its single element, and a malformed
// one is an error that says where.
func TestSequenceComponents(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "bytelevel-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(key, value string) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(base, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = json.RawMessage(value)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	plain, err := Parse(base, "base")
	if err != nil {
		t.Fatal(err)
	}
	text := "Hello  world, it's 2026!"
	for _, tc := range []struct {
		key, value, want string // want: "" for success, else an error substring
	}{
		{"pre_tokenizer", `{"type":"Sequence","pretokenizers":[{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}]}`, ""},
		{"decoder", `{"type":"Sequence","decoders":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}]}`, ""},
		{"normalizer", `{"type":"Sequence","normalizers":[]}`, ""},
		{"post_processor", `{"type":"Sequence","processors":[]}`, ""},
		{"normalizer", `{"type":"Sequence"}`, `Sequence: missing "normalizers"`},
		{"decoder", `{"type":"Sequence","decoders":null}`, `Sequence: missing "decoders"`},
		{"pre_tokenizer", `{"type":"Sequence","pretokenizers":[],"extra":1}`, `unknown field "extra"`},
		{"post_processor", `{"type":"Sequence","processors":{}}`, "Sequence: json: cannot unmarshal"},
		{"normalizer", `{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Precompiled"}]}`, "Sequence.normalizers[1]"},
	} {
		tok, err := Parse(with(tc.key, tc.value), "test.json")
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: error %v, want one containing %q", tc.key, tc.value, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.key, tc.value, err)
			continue
		}
		ids, want := tok.Encode(text, true), plain.Encode(text, true)
		if len(ids) != len(want) || tok.Decode(ids, false) != plain.Decode(want, false) {
			t.Errorf("%s %s: encodes to %v (%q), want %v (%q)", tc.key, tc.value, ids, tok.Decode(ids, false), want, plain.Decode(want, false))
		}
	}
}
