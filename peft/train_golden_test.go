package peft

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/optim"
)

// TestGoldenAdamWSteps trains the fixture's initial adapter for three AdamW
// steps (lr 1e-2, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on every
// adapter tensor, on one batch) and compares the loss before each step and
// every adapter tensor after the last with PyTorch's float64 run.
func TestGoldenAdamWSteps(t *testing.T) {
	b := testBackend(t)
	for _, dir := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			gf, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			m := load(t, b)
			ad, err := Load(b, m, filepath.Join(dir, "adapter_init"), true)
			if err != nil {
				t.Fatal(err)
			}
			ad.SetTraining(true)
			opt, err := optim.NewAdamW(ad.Params, 0.9, 0.999, 1e-8, 0.01, nil)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := gf.Info("input_ids")
			bsz, T := info.Shape[0], info.Shape[1]
			ids, labels := goldenInts(t, gf, "input_ids"), goldenInts(t, gf, "labels")
			idT, _ := autograd.Int32s(b, ids, bsz, T)
			pos := make([]int32, bsz*T)
			for i := range pos {
				pos[i] = int32(i % T)
			}
			posT, _ := autograd.Int32s(b, pos, bsz*T)
			pool := autograd.NewPool(b)
			for step := 0; step <= 3; step++ {
				if err := ad.Params.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				g := autograd.New(b, pool)
				loss, n := m.Loss(g, models.Inputs{IDs: idT, Positions: posT}, labels)
				if err := g.Backward(loss, 1/float64(n)); err != nil {
					t.Fatal(err)
				}
				lv, _ := g.Value(loss)
				g.Release()
				want := goldenFloats(t, gf, "loss0")[0]
				if step > 0 {
					want = goldenFloats(t, gf, "loss."+string(rune('0'+step)))[0]
				}
				if got := lv[0] / float64(n); math.Abs(got-want) > 1e-5*want {
					t.Errorf("loss after %d steps: %.7f, PyTorch %.7f", step, got, want)
				}
				if step < 3 {
					if err := opt.Step(1e-2, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range ad.Params.Params {
				got, err := autograd.ToHost(b, p.Var.Value)
				if err != nil {
					t.Fatal(err)
				}
				want := goldenFloats(t, gf, "after."+p.Name)
				var d, nrm float64
				for i := range got {
					d += (got[i] - want[i]) * (got[i] - want[i])
					nrm += want[i] * want[i]
				}
				if e := math.Sqrt(d / nrm); e > 1e-5 {
					t.Errorf("%s after 3 steps: relative error %.3g > 1e-5", p.Name, e)
				}
			}
		})
	}
}
