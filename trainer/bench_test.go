package trainer_test

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/peft"
	"github.com/whet-ai/whet/tensor"
)

// config100M is a Llama of about 100M parameters (hidden 768, 12 layers,
// 12/4 heads, MLP 2048, vocabulary 16000).
const config100M = `{"model_type": "llama", "vocab_size": 16000, "hidden_size": 768,
 "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
 "num_key_value_heads": 4, "rms_norm_eps": 1e-5, "max_position_embeddings": 2048}`

// peakRSS is the process's peak resident set (VmHWM) in bytes; resetPeak
// starts a new measurement (Linux 4.0+).
func peakRSS() int64 {
	raw, _ := os.ReadFile("/proc/self/status")
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// random100M builds the config100M Llama with random weights held in
// dtype (F32 or BF16).
func random100M(b *testing.B, be backend.Backend, dtype tensor.DType) models.Model {
	cfg, err := hf.ParseConfig("config100M", []byte(config100M))
	if err != nil {
		b.Fatal(err)
	}
	m, err := models.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range nn.Params(m) {
		shape, ok := m.(*models.Llama).WeightShape(p.Name)
		if !ok || m.Optional(p.Name) {
			continue
		}
		n, _ := tensor.NumElements(shape)
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * 0.02)
			if len(shape) == 1 {
				vals[i] = 1
			}
		}
		t, err := backend.FromFloat32(be, vals, shape...)
		if err != nil {
			b.Fatal(err)
		}
		if dtype != tensor.F32 {
			c, _ := be.Alloc(dtype, shape...)
			if err := be.Convert(c, t); err != nil {
				b.Fatal(err)
			}
			t = c
		}
		*p.Var = autograd.Const(p.Name, t)
	}
	return m
}

// loraRun is LoRA training (r 16 on every linear layer, AdamW) of a model
// on one random sequence of 512 tokens per step.
type loraRun struct {
	be     backend.Backend
	m      models.Model
	ad     *peft.Adapter
	opt    optim.Optimizer
	in     models.Inputs
	labels []int32
	pool   *autograd.Pool
	tokens int
}

func newLoRARun(b *testing.B, be backend.Backend, m models.Model) *loraRun {
	ad, err := peft.Attach(be, m, peft.NewLoraConfig(peft.ModulePattern("all-linear")), 1)
	if err != nil {
		b.Fatal(err)
	}
	ad.SetTraining(true)
	opt, err := optim.NewAdamW(ad.Params, 0.9, 0.999, 1e-8, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	const T = 512
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]int32, T)
	pos := make([]int32, T)
	for i := range ids {
		ids[i], pos[i] = int32(rng.IntN(16000)), int32(i)
	}
	idT, _ := autograd.Int32s(be, ids, 1, T)
	posT, _ := autograd.Int32s(be, pos, T)
	return &loraRun{be: be, m: m, ad: ad, opt: opt, in: models.Inputs{IDs: idT, Positions: posT}, labels: ids, tokens: T}
}

// measure runs the benchmark's steps on a fresh pool, after handing freed
// memory back to the OS so that the peak RSS is this run's, and reports
// tokens/s (median step), the peak RSS and the peak of activation memory.
func (r *loraRun) measure(b *testing.B) {
	r.pool = autograd.NewPool(r.be)
	debug.FreeOSMemory()
	resetPeak()
	var secs []float64
	for b.Loop() {
		start := time.Now()
		r.ad.Params.ZeroGrad()
		g := autograd.New(r.be, r.pool)
		loss, n := r.m.Loss(g, r.in, r.labels)
		if err := g.Backward(loss, 1/float64(n)); err != nil {
			b.Fatal(err)
		}
		g.Release()
		if err := r.opt.Step(1e-4, 0); err != nil {
			b.Fatal(err)
		}
		secs = append(secs, time.Since(start).Seconds())
	}
	slices.Sort(secs)
	b.ReportMetric(float64(r.tokens)/secs[len(secs)/2], "tokens/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(r.pool.Peak())/(1<<20), "activations-MiB")
}

// BenchmarkLoRA100M measures LoRA training (r 16 on every linear layer,
// AdamW) of the ~100M-parameter Llama, f32, one sequence of 512 tokens per
// step, with and without gradient checkpointing: tokens/s, the process's
// peak RSS, and the peak of activation memory.
func BenchmarkLoRA100M(b *testing.B) {
	be, err := backend.Default()
	if err != nil {
		b.Fatal(err)
	}
	r := newLoRARun(b, be, random100M(b, be, tensor.F32))
	for _, ckpt := range []bool{true, false} {
		name := map[bool]string{false: "plain", true: "checkpointing"}[ckpt]
		b.Run(name, func(b *testing.B) {
			r.m.(*models.Llama).SetCheckpointing(ckpt)
			r.measure(b)
			b.ReportMetric(float64(r.ad.Params.Len())/1e6, "Mtrainable")
		})
	}
}

// BenchmarkQLoRA100M compares QLoRA (an NF4 base with double quantisation)
// with LoRA on a bf16 base, on the ~100M-parameter Llama at 512 tokens,
// LoRA r 16 on every linear layer: tokens/s and the process's peak RSS
// during training (measured after set-up, so the dense weights a run
// starts from do not count).
func BenchmarkQLoRA100M(b *testing.B) {
	be, err := backend.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"bf16-lora", "nf4-qlora"} {
		b.Run(kind, func(b *testing.B) {
			m := random100M(b, be, tensor.BF16)
			if kind == "nf4-qlora" {
				if _, err := models.Quantize(be, m, models.QuantOptions{Kind: backend.QuantNF4, DoubleQuant: true}); err != nil {
					b.Fatal(err)
				}
			}
			r := newLoRARun(b, be, m)
			r.measure(b)
			b.ReportMetric(float64(models.WeightBytes(m))/(1<<20), "weights-MiB")
		})
	}
}
