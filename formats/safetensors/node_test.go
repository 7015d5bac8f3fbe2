package safetensors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/internal/testref"
)

// hubDirEnv names a directory where `npm install @huggingface/hub` was run;
// TestIndependentCheck then also runs Hugging Face's JS parser on whet's
// files.
const hubDirEnv = "WHET_HFJS_DIR"

// TestIndependentCheck writes checkpoints (one file; shards plus index) and
// checks them with testdata/stcheck.mjs under Node: a reader of the format
// written from the spec that shares no code with this package, applying the
// reference library's load-time rules, and, when WHET_HFJS_DIR is set,
// @huggingface/hub's parseSafetensorsMetadata. See stcheck.mjs for the
// list of checks.
func TestIndependentCheck(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testref.Missing(t, "node is not installed: skipping the independent Node check of written files")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	ts := randomTensors(rng, append(Dtypes(), F32, BF16, F16, BF16), "model.layers.")
	vals := []float32{1, -2.5, 3.25, 0}
	for _, d := range []Dtype{F32, BF16, F16} {
		data, _ := EncodeFloat32(d, vals)
		ts = append(ts, Tensor{Name: "known." + d.String(), DType: d, Shape: []int{2, 2}, Data: data})
	}
	ts = append(ts,
		Tensor{Name: `odd "name" \ with escapes`, DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		Tensor{Name: "scalar", DType: F64, Shape: []int{}, Data: make([]byte, 8)},
		Tensor{Name: "empty", DType: F32, Shape: []int{4, 0}, Data: nil},
		Tensor{Name: "unicode.é", DType: I8, Shape: []int{1}, Data: []byte{0xff}},
	)
	md := map[string]string{"whet": "test", "note": "line\nbreak"}

	type expTensor struct {
		DType  string `json:"dtype"`
		Shape  []int  `json:"shape"`
		SHA256 string `json:"sha256"`
	}
	exp := struct {
		Tensors  map[string]expTensor `json:"tensors"`
		Metadata map[string]string    `json:"metadata"`
	}{Tensors: map[string]expTensor{}, Metadata: map[string]string{"format": "pt"}}
	for _, tt := range ts {
		sum := sha256.Sum256(tt.Data)
		shape := tt.Shape
		if shape == nil {
			shape = []int{}
		}
		exp.Tensors[tt.Name] = expTensor{tt.DType.String(), shape, hex.EncodeToString(sum[:])}
	}
	for k, v := range md {
		exp.Metadata[k] = v
	}
	tmp := t.TempDir()
	expPath := filepath.Join(tmp, "expect.json")
	b, _ := json.Marshal(exp)
	if err := os.WriteFile(expPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	var total int
	for _, tt := range ts {
		total += len(tt.Data)
	}
	dirs := map[string]int64{"single": int64(total), "sharded": int64(total / 4)}
	for name, limit := range dirs {
		dir := filepath.Join(tmp, name)
		paths, err := WriteSharded(dir, ts, md, limit)
		if err != nil {
			t.Fatal(err)
		}
		if (name == "sharded") != (len(paths) > 2) {
			t.Fatalf("%s: wrote %d files", name, len(paths))
		}
	}
	script := filepath.Join("testdata", "stcheck.mjs")
	run := func(t *testing.T, args ...string) {
		t.Helper()
		out, err := exec.Command(node, append([]string{script, "--expect", expPath}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
	for _, name := range []string{"single", "sharded"} {
		t.Run("spec/"+name, func(t *testing.T) { run(t, filepath.Join(tmp, name)) })
	}
	// The checker must be able to fail: damaged copies of the one-file
	// checkpoint are refused.
	good, err := os.ReadFile(filepath.Join(tmp, "single", SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		file []byte
		want string
	}{
		{"trailing bytes", append(slices.Clone(good), 0, 0, 0, 0), "tensors cover"},
		{"changed data", append(slices.Clone(good[:len(good)-1]), good[len(good)-1]^1), "want"},
		{"unpadded header", fileBytes(`{"__metadata__":{"format":"pt","xy":"z"}}`, nil), "41 is not a multiple of 8"},
		{"duplicate key", fileBytes(pad8(`{"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`), []byte{1, 2}), `duplicate key "a"`},
	} {
		t.Run("spec/detects "+bad.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bad")
			os.Mkdir(dir, 0o755)
			if err := os.WriteFile(filepath.Join(dir, SingleFileName), bad.file, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(node, script, "--expect", expPath, dir).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "FAIL") || !strings.Contains(string(out), bad.want) {
				t.Errorf("stcheck.mjs on a damaged file: %v\n%s\nwant a failure mentioning %q", err, out, bad.want)
			}
		})
	}

	hubDir := os.Getenv(hubDirEnv)
	if hubDir == "" {
		t.Logf("%s is not set: skipping the @huggingface/hub check (to run it: mkdir /tmp/hfjs && cd /tmp/hfjs && npm install @huggingface/hub@2.17.5, then %s=/tmp/hfjs)", hubDirEnv, hubDirEnv)
		return
	}
	if _, err := os.Stat(filepath.Join(hubDir, "node_modules", "@huggingface", "hub", "package.json")); err != nil {
		testref.Missing(t, "%s=%s has no node_modules/@huggingface/hub: skipping the @huggingface/hub check", hubDirEnv, hubDir)
	}
	for _, name := range []string{"single", "sharded"} {
		t.Run("hub/"+name, func(t *testing.T) { run(t, "--hub", hubDir, filepath.Join(tmp, name)) })
	}
}

// pad8 pads a header with spaces to a multiple of 8 bytes.
func pad8(hdr string) string {
	return hdr + strings.Repeat(" ", (8-len(hdr)%8)%8)
}
