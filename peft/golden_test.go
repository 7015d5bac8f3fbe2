package peft

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
)

// goldenCases lists the case directories under testdata/golden (written by
// scripts/golden/lora_golden.py with PEFT's conventions, in float64).
func goldenCases(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join("testdata", "golden", "*", "golden.safetensors"))
	if len(dirs) == 0 {
		t.Fatal("no PEFT fixtures under testdata/golden (scripts/golden/lora_golden.py writes them)")
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

func goldenFloats(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	s, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// TestGoldenFixtures: the fixture's initial adapter, loaded onto the
// llama-gqa base, reproduces PyTorch's logits, loss and adapter gradients,
// and its merged model the merged logits; the trained adapter reproduces
// the loss after three steps.
func TestGoldenFixtures(t *testing.T) {
	b := testBackend(t)
	for _, dir := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			gf, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			info, _ := gf.Info("input_ids")
			bsz, T := info.Shape[0], info.Shape[1]
			ids, labels := goldenInts(t, gf, "input_ids"), goldenInts(t, gf, "labels")
			idT, _ := autograd.Int32s(b, ids, bsz, T)
			pos := make([]int32, bsz*T)
			for i := range pos {
				pos[i] = int32(i % T)
			}
			posT, _ := autograd.Int32s(b, pos, bsz*T)
			in := models.Inputs{IDs: idT, Positions: posT}
			run := func(m models.Model, backward bool) (logits []float64, loss float64) {
				g := autograd.New(b, autograd.NewPool(b))
				defer g.Release()
				var lv *autograd.Var
				var n int
				if backward {
					lv, n = m.Loss(g, in, labels)
					if err := g.Backward(lv, 1/float64(n)); err != nil {
						t.Fatal(err)
					}
				} else {
					g.NoGrad(func() {
						logits, err = g.Value(m.Logits(g, m.Forward(g, in)))
						lv, n = m.Loss(g, in, labels)
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				v, err := g.Value(lv)
				if err != nil {
					t.Fatal(err)
				}
				return logits, v[0] / float64(n)
			}
			checkLoss := func(what string, got float64, name string) {
				want := goldenFloats(t, gf, name)[0]
				if e := math.Abs(got-want) / want; e > 1e-5 {
					t.Errorf("%s: loss %.7f, want %.7f (relative error %.3g)", what, got, want, e)
				} else {
					t.Logf("%s: loss relative error %.2g", what, e)
				}
			}

			m := load(t, b)
			ad, err := Load(b, m, filepath.Join(dir, "adapter_init"), true)
			if err != nil {
				t.Fatal(err)
			}
			logits, l0 := run(m, false)
			if d := maxAbsDiff(logits, goldenFloats(t, gf, "logits0")); d > 1e-4 {
				t.Errorf("logits0: max difference %.3g", d)
			} else {
				t.Logf("logits0: max difference %.2g", d)
			}
			checkLoss("initial adapter", l0, "loss0")
			run(m, true)
			worst := 0.0
			for _, p := range ad.Params.Params {
				want := goldenFloats(t, gf, "grad."+p.Name)
				e := relErr(host(t, b, p.Var.Grad), want)
				if e > 1e-5 {
					t.Errorf("gradient of %s: relative error %.3g", p.Name, e)
				}
				worst = max(worst, e)
			}
			t.Logf("gradients of %d adapter tensors: worst relative error %.2g", len(ad.Params.Params), worst)
			if len(ad.Params.Params) == 0 {
				t.Fatal("no adapter tensors")
			}
			if err := ad.Merge(); err != nil {
				t.Fatal(err)
			}
			merged, _ := run(m, false)
			if d := maxAbsDiff(merged, goldenFloats(t, gf, "merged_logits0")); d > 1e-4 {
				t.Errorf("merged_logits0: max difference %.3g", d)
			} else {
				t.Logf("merged_logits0: max difference %.2g", d)
			}

			after := load(t, b)
			if _, err := Load(b, after, filepath.Join(dir, "adapter_after"), false); err != nil {
				t.Fatal(err)
			}
			_, l3 := run(after, false)
			checkLoss("trained adapter", l3, "loss.3")
		})
	}
}

// TestGoldenFormat: an adapter whet attaches with the fixture's config and
// saves has exactly the fixture's tensor keys, shapes and dtypes, and
// adapter_config.json key set, and the values PEFT would give it.
func TestGoldenFormat(t *testing.T) {
	b := testBackend(t)
	for _, dir := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			init := filepath.Join(dir, "adapter_init")
			cfg, err := ReadConfig(init)
			if err != nil {
				t.Fatal(err)
			}
			m := load(t, b)
			ad, err := Attach(b, m, cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "saved")
			if err := ad.Save(out); err != nil {
				t.Fatal(err)
			}
			if got, want := tensorNames(t, filepath.Join(out, WeightsFile)), tensorNames(t, filepath.Join(init, WeightsFile)); !slices.Equal(got, want) {
				t.Errorf("tensor keys %v, want the fixture's %v", got, want)
			}
			a, err := safetensors.Open(filepath.Join(out, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			f, err := safetensors.Open(filepath.Join(init, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, name := range f.Names() {
				x, _ := a.Info(name)
				y, _ := f.Info(name)
				if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) {
					t.Errorf("%s: %v %v, the fixture has %v %v", name, x.DType, x.Shape, y.DType, y.Shape)
				}
			}
			if got, want := configKeys(t, filepath.Join(out, ConfigFile)), configKeys(t, filepath.Join(init, ConfigFile)); !slices.Equal(got, want) {
				t.Errorf("adapter_config.json keys %v, want the fixture's %v", got, want)
			}
			saved, err := ReadConfig(out)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(saved.TargetModules.Names, cfg.TargetModules.Names) || saved.R != cfg.R || saved.LoraAlpha != cfg.LoraAlpha ||
				saved.UseDoRA != cfg.UseDoRA || saved.UseRSLoRA != cfg.UseRSLoRA || saved.BaseModelNameOrPath != cfg.BaseModelNameOrPath {
				data, _ := os.ReadFile(filepath.Join(out, ConfigFile))
				t.Errorf("saved config differs from the fixture's:\n%s", data)
			}
		})
	}
}
