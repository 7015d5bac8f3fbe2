package peft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// TestMergeEqualsAdapter: for LoRA, rsLoRA and DoRA with non-zero B, the
// model with the adapter attached gives the logits of the merged model
// (within 1e-4), Unmerge brings back the base weights themselves, and
// Detach the base logits bit for bit. The qwen2 variant has q/k/v biases,
// which DoRA takes out of its scaled part.
func TestMergeEqualsAdapter(t *testing.T) {
	b := testBackend(t)
	tests := []struct {
		name    string
		variant string
		mod     func(*LoraConfig)
	}{
		{"lora", "llama-gqa", nil},
		{"rslora", "llama-gqa", func(c *LoraConfig) { c.UseRSLoRA = true }},
		{"dora", "llama-gqa", func(c *LoraConfig) { c.UseDoRA = true }},
		{"dora-rslora", "llama-gqa", func(c *LoraConfig) { c.UseDoRA, c.UseRSLoRA = true, true }},
		{"lora-bias", "qwen2-bias", nil},
		{"dora-bias", "qwen2-bias", func(c *LoraConfig) { c.UseDoRA = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := loadVariant(t, b, golden(tc.variant))
			baseLogits := logits(t, b, m)
			cfg := testConfig(ModulePattern(AllLinear), tc.mod)
			ad, err := Attach(b, m, cfg, 7)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UseDoRA {
				// Move m away from the norms, so that mag != 1.
				for i, l := range ad.Layers {
					v := host(t, b, l.Magnitude.Value)
					for j := range v {
						v[j] *= 1 + 0.3*math.Sin(float64(i+j))
					}
					if err := copyIn(b, l.Magnitude.Value, v); err != nil {
						t.Fatal(err)
					}
				}
			}
			ad.SetTraining(false)
			withAdapter := logits(t, b, m)
			if d := maxAbsDiff(withAdapter, baseLogits); d < 1e-2 {
				t.Fatalf("the adapter moved the logits by only %.3g; the test checks nothing", d)
			}
			origWeights := map[string]*autograd.Var{}
			for _, l := range ad.Layers {
				origWeights[l.Name] = l.Linear.Weight
			}
			if err := ad.Merge(); err != nil {
				t.Fatal(err)
			}
			for _, l := range ad.Layers {
				if l.Linear.Adapter != nil {
					t.Fatalf("%s still has its adapter after Merge", l.Name)
				}
			}
			merged := logits(t, b, m)
			if d := maxAbsDiff(merged, withAdapter); d > 1e-4 {
				t.Errorf("merged logits differ from the adapter's by %.3g", d)
			}
			ad.Unmerge()
			for _, l := range ad.Layers {
				if l.Linear.Weight != origWeights[l.Name] || l.Linear.Adapter != l {
					t.Fatalf("%s: Unmerge did not restore the base weight and the adapter", l.Name)
				}
			}
			if d := maxAbsDiff(logits(t, b, m), withAdapter); d != 0 {
				t.Errorf("after Unmerge the adapter's logits moved by %.3g", d)
			}
			ad.Detach()
			if d := maxAbsDiff(logits(t, b, m), baseLogits); d != 0 {
				t.Errorf("after Unmerge and Detach the base logits moved by %.3g", d)
			}
		})
	}
}

// TestMergedWeights: every weight of the model comes back by name, the
// adapted ones merged and in the base dtype (bf16 here).
func TestMergedWeights(t *testing.T) {
	b := testBackend(t)
	m := load(t, b)
	toDType(t, b, m, tensor.BF16)
	before := ModelWeights(m)
	ad, err := Attach(b, m, testConfig(ModuleList("q_proj", "down_proj"), func(c *LoraConfig) { c.UseDoRA = true }), 3)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := ad.MergedWeights()
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != len(before) {
		t.Fatalf("%d weights, want %d", len(ws), len(before))
	}
	changed := 0
	for i, w := range ws {
		if w.Name != before[i].Name {
			t.Fatalf("weight %d is %s, want %s", i, w.Name, before[i].Name)
		}
		if w.Value.DType() != tensor.BF16 {
			t.Errorf("%s is %v, want bf16", w.Name, w.Value.DType())
		}
		adapted := strings.HasSuffix(w.Name, "q_proj.weight") || strings.HasSuffix(w.Name, "down_proj.weight")
		if (w.Value != before[i].Value) != adapted {
			t.Errorf("%s: replaced %v, adapted %v", w.Name, w.Value != before[i].Value, adapted)
		}
		if adapted {
			changed++
		}
	}
	if changed != 4 {
		t.Errorf("%d weights merged, want 4", changed)
	}
}

// setFixedNorms holds each DoRA layer's weight norm at its current value.
func setFixedNorms(t *testing.T, ad *Adapter) {
	t.Helper()
	for _, l := range ad.Layers {
		if l.Magnitude == nil {
			continue
		}
		w := l.Linear.Weight.Value
		tmp, err := ad.b.Alloc(l.A.Value.DType(), w.Dim(0), w.Dim(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.combined(tmp); err != nil {
			t.Fatal(err)
		}
		inv, err := ad.b.Alloc(l.A.Value.DType(), w.Dim(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := ad.b.RowNorms(inv, tmp, true); err != nil {
			t.Fatal(err)
		}
		l.fixedNorm = inv
	}
}

// TestGradCheck: with the model and the adapter in float64, the gradients
// of the summed loss with respect to A, B and DoRA's magnitude match
// central finite differences. DoRA's weight norm is detached (PEFT's
// gradient treats it as a constant), so the differences are taken with the
// norm held at its value.
func TestGradCheck(t *testing.T) {
	b := testBackend(t)
	tests := []struct {
		name    string
		variant string
		mod     func(*LoraConfig)
	}{
		{"lora", "llama-gqa", nil},
		{"lora-dropout", "llama-gqa", func(c *LoraConfig) { c.LoraDropout = 0.2 }},
		{"rslora", "llama-gqa", func(c *LoraConfig) { c.UseRSLoRA = true }},
		{"dora", "llama-gqa", func(c *LoraConfig) { c.UseDoRA = true }},
		{"dora-dropout", "llama-gqa", func(c *LoraConfig) { c.UseDoRA, c.LoraDropout = true, 0.2 }},
		{"dora-bias", "qwen2-bias", func(c *LoraConfig) { c.UseDoRA = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := loadVariant(t, b, golden(tc.variant))
			toDType(t, b, m, tensor.F64)
			cfg := testConfig(ModulePattern(AllLinear), tc.mod)
			ad, err := Attach(b, m, cfg, 11, WithDType(tensor.F64))
			if err != nil {
				t.Fatal(err)
			}
			ad.SetStep(5)
			if err := ad.Params.ZeroGrad(); err != nil {
				t.Fatal(err)
			}
			loss(t, b, m, true)
			setFixedNorms(t, ad)
			rng := rand.New(rand.NewPCG(1, 2))
			const eps = 1e-5
			checked := 0
			for _, li := range []int{0, 2, 6, len(ad.Layers) - 1} {
				l := ad.Layers[li]
				for _, v := range []*autograd.Var{l.A, l.B, l.Magnitude} {
					if v == nil {
						continue
					}
					vals := host(t, b, v.Value)
					grad := host(t, b, v.Grad)
					var an, fd []float64
					for range 4 {
						i := rng.IntN(len(vals))
						x := vals[i]
						vals[i] = x + eps
						copyIn(b, v.Value, vals)
						up := loss(t, b, m, false)
						vals[i] = x - eps
						copyIn(b, v.Value, vals)
						down := loss(t, b, m, false)
						vals[i] = x
						copyIn(b, v.Value, vals)
						an = append(an, grad[i])
						fd = append(fd, (up-down)/(2*eps))
					}
					if e := relErr(an, fd); e > 1e-6 || math.IsNaN(e) {
						t.Errorf("%s: gradient %v, finite differences %v: relative error %.3g", v.Name(), an, fd, e)
					}
					if slices.Max(fd) == 0 && slices.Min(fd) == 0 {
						t.Errorf("%s: zero finite differences; the check checks nothing", v.Name())
					}
					checked++
				}
			}
			want := 8
			if cfg.UseDoRA {
				want = 12
			}
			if checked != want {
				t.Errorf("checked %d tensors, want %d", checked, want)
			}
		})
	}
}

// TestDropout: dropout depends on the step and the training mode only; an
// evaluation pass has none.
func TestDropout(t *testing.T) {
	b := testBackend(t)
	for _, dora := range []bool{false, true} {
		t.Run(fmt.Sprintf("dora=%v", dora), func(t *testing.T) {
			m := load(t, b)
			ad, err := Attach(b, m, testConfig(ModulePattern(AllLinear), func(c *LoraConfig) { c.LoraDropout, c.UseDoRA = 0.3, dora }), 1)
			if err != nil {
				t.Fatal(err)
			}
			ad.SetStep(1)
			s1 := logits(t, b, m)
			if d := maxAbsDiff(logits(t, b, m), s1); d != 0 {
				t.Errorf("the same step gave logits %.3g apart", d)
			}
			ad.SetStep(2)
			if d := maxAbsDiff(logits(t, b, m), s1); d == 0 {
				t.Errorf("two steps drew the same dropout masks")
			}
			ad.SetTraining(false)
			eval := logits(t, b, m)
			ad.Config.LoraDropout = 0
			for _, l := range ad.Layers {
				l.Dropout = 0
			}
			ad.SetTraining(true)
			if d := maxAbsDiff(logits(t, b, m), eval); d != 0 {
				t.Errorf("evaluation differs from no dropout by %.3g", d)
			}
		})
	}
}

// TestSelectTargets covers PEFT's matching rules on llama-gqa (2 layers).
func TestSelectTargets(t *testing.T) {
	b := testBackend(t)
	m := load(t, b)
	all := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	layer := func(i int, names ...string) []string {
		var out []string
		for _, n := range names {
			sub := "self_attn"
			if strings.Contains("gate_proj up_proj down_proj", n) {
				sub = "mlp"
			}
			out = append(out, fmt.Sprintf("model.layers.%d.%s.%s", i, sub, n))
		}
		return out
	}
	tests := []struct {
		name string
		mod  func(*LoraConfig)
		want []string
		err  string
	}{
		{"suffix list", func(c *LoraConfig) { c.TargetModules = ModuleList("q_proj", "v_proj") },
			append(layer(0, "q_proj", "v_proj"), layer(1, "q_proj", "v_proj")...), ""},
		{"dotted suffix", func(c *LoraConfig) { c.TargetModules = ModuleList("mlp.up_proj") },
			append(layer(0, "up_proj"), layer(1, "up_proj")...), ""},
		{"partial name is no suffix", func(c *LoraConfig) { c.TargetModules = ModuleList("proj") }, nil, "match no linear layer"},
		{"exact name", func(c *LoraConfig) { c.TargetModules = ModuleList("model.layers.1.self_attn.o_proj") }, layer(1, "o_proj"), ""},
		{"regex", func(c *LoraConfig) { c.TargetModules = ModulePattern(`.*\.1\.self_attn\.(q|k)_proj`) }, layer(1, "q_proj", "k_proj"), ""},
		{"regex is a full match", func(c *LoraConfig) { c.TargetModules = ModulePattern(`q_proj`) }, nil, "match no linear layer"},
		{"all-linear", func(c *LoraConfig) { c.TargetModules = ModulePattern("all-linear") },
			append(layer(0, all...), layer(1, all...)...), ""},
		{"all-linear any case", func(c *LoraConfig) { c.TargetModules = ModulePattern("ALL-LINEAR") },
			append(layer(0, all...), layer(1, all...)...), ""},
		{"layers_to_transform", func(c *LoraConfig) {
			c.TargetModules, c.LayersToTransform = ModuleList("q_proj", "down_proj"), Ints{1}
		}, layer(1, "q_proj", "down_proj"), ""},
		{"layers_pattern", func(c *LoraConfig) {
			c.TargetModules, c.LayersToTransform, c.LayersPattern = ModuleList("k_proj"), Ints{0}, Strings{"layers"}
		}, layer(0, "k_proj"), ""},
		{"layers_pattern elsewhere", func(c *LoraConfig) {
			c.TargetModules, c.LayersToTransform, c.LayersPattern = ModuleList("k_proj"), Ints{0}, Strings{"h"}
		}, nil, "match no linear layer"},
		{"exact name ignores layers_to_transform", func(c *LoraConfig) {
			c.TargetModules, c.LayersToTransform = ModuleList("model.layers.0.self_attn.q_proj", "v_proj"), Ints{1}
		}, []string{"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}, ""},
		{"exclude list", func(c *LoraConfig) {
			c.TargetModules, c.ExcludeModules = ModulePattern(AllLinear), ModuleList("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "o_proj", "k_proj", "v_proj")
		}, append(layer(0, "q_proj"), layer(1, "q_proj")...), ""},
		{"exclude regex", func(c *LoraConfig) {
			c.TargetModules, c.ExcludeModules = ModuleList("q_proj"), ModulePattern(`.*\.0\..*`)
		}, layer(1, "q_proj"), ""},
		{"look-ahead", func(c *LoraConfig) { c.TargetModules = ModulePattern(`(?!lm_head).*`) }, nil, "RE2"},
		{"string with layers", func(c *LoraConfig) { c.TargetModules, c.LayersToTransform = ModulePattern(".*q_proj"), Ints{0} }, nil, "layers_to_transform cannot be used"},
		{"no targets", func(c *LoraConfig) { c.TargetModules = Modules{} }, nil, "target_modules is not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(Modules{}, tc.mod)
			ad, err := Attach(b, m, cfg, 1)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Detach()
			var got []string
			for _, l := range ad.Layers {
				got = append(got, l.Name)
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("selected %v, want %v", got, want)
			}
			for _, nl := range nn.Linears(m) {
				if (nl.Layer.Adapter != nil) != slices.Contains(want, nl.Name) {
					t.Errorf("%s: adapter set %v", nl.Name, nl.Layer.Adapter != nil)
				}
			}
		})
	}
	// Attaching twice is an error.
	ad, err := Attach(b, m, testConfig(ModuleList("q_proj"), nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(b, m, testConfig(ModuleList("q_proj"), nil), 1); err == nil || !strings.Contains(err.Error(), "already has an adapter") {
		t.Errorf("second Attach: %v", err)
	}
	ad.Detach()
}

// TestInit: PEFT's default init leaves the model's logits unchanged (B is
// zero) with A in ±1/sqrt(in); "gaussian" draws A with std 1/r; false
// draws B in ±1/sqrt(r); DoRA's magnitude starts as the row norms of W.
func TestInit(t *testing.T) {
	b := testBackend(t)
	tests := []struct {
		name string
		init InitWeights
		dora bool
	}{
		{"default", InitDefault, false},
		{"default-dora", InitDefault, true},
		{"gaussian", InitGaussian, false},
		{"false", InitRandom, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, b)
			baseLogits := logits(t, b, m)
			const r = 4
			cfg := testConfig(ModulePattern(AllLinear), func(c *LoraConfig) { c.InitLoraWeights, c.UseDoRA, c.R = tc.init, tc.dora, r })
			ad, err := Attach(b, m, cfg, 42)
			if err != nil {
				t.Fatal(err)
			}
			ad.SetTraining(false)
			var sum, sq, n float64
			for _, l := range ad.Layers {
				in := float64(l.A.Value.Dim(1))
				a, bv := host(t, b, l.A.Value), host(t, b, l.B.Value)
				for _, x := range a {
					if tc.init != InitGaussian && math.Abs(x) > 1/math.Sqrt(in) {
						t.Fatalf("%s: A element %g outside ±1/sqrt(%g)", l.Name, x, in)
					}
					sum, sq, n = sum+x, sq+x*x, n+1
				}
				nonzero := slices.ContainsFunc(bv, func(x float64) bool { return x != 0 })
				if nonzero != (tc.init == InitRandom) {
					t.Errorf("%s: B non-zero %v with init %s", l.Name, nonzero, tc.init)
				}
				for _, x := range bv {
					if math.Abs(x) > 1/math.Sqrt(r) {
						t.Fatalf("%s: B element %g outside ±1/sqrt(r)", l.Name, x)
					}
				}
				if tc.dora {
					w := host(t, b, l.Linear.Weight.Value)
					mv := host(t, b, l.Magnitude.Value)
					in := l.Linear.Weight.Value.Dim(1)
					for o := range mv {
						s := 0.0
						for _, x := range w[o*in : (o+1)*in] {
							s += x * x
						}
						if math.Abs(mv[o]-math.Sqrt(s)) > 1e-5*math.Sqrt(s) {
							t.Fatalf("%s: magnitude[%d] = %g, want ||W[%d]|| = %g", l.Name, o, mv[o], o, math.Sqrt(s))
						}
					}
				}
			}
			mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
			if tc.init == InitGaussian && (math.Abs(std-1.0/r) > 0.03/r || math.Abs(mean) > 0.03/r) {
				t.Errorf("gaussian A: mean %.4g, std %.4g, want 0 and %g", mean, std, 1.0/r)
			}
			got := logits(t, b, m)
			switch {
			case tc.init == InitRandom:
				if maxAbsDiff(got, baseLogits) < 1e-3 {
					t.Errorf("random init left the logits unchanged")
				}
			case tc.dora:
				if d := maxAbsDiff(got, baseLogits); d > 1e-5 {
					t.Errorf("DoRA's initial adapter moved the logits by %.3g", d)
				}
			default:
				if d := maxAbsDiff(got, baseLogits); d != 0 {
					t.Errorf("B = 0 moved the logits by %.3g", d)
				}
			}
		})
	}
	// Same seed, same values; another seed, others.
	vals := func(seed uint64) []float64 {
		m := load(t, b)
		ad, err := Attach(b, m, testConfig(ModuleList("q_proj"), nil), seed)
		if err != nil {
			t.Fatal(err)
		}
		return host(t, b, ad.Params.Values)
	}
	if a, c := vals(1), vals(1); !slices.Equal(a, c) {
		t.Errorf("the same seed gave different initial values")
	}
	if a, c := vals(1), vals(2); slices.Equal(a, c) {
		t.Errorf("two seeds gave the same initial values")
	}
	// Unsupported init methods are refused.
	if _, err := Attach(b, load(t, b), testConfig(ModuleList("q_proj"), func(c *LoraConfig) { c.InitLoraWeights = "pissa" }), 1); err == nil || !strings.Contains(err.Error(), "pissa") {
		t.Errorf("pissa: %v", err)
	}
}

// TestParamSetLayout: one ParamSet, groups lora_A, lora_B and
// lora_magnitude in that order, named by safetensors key.
func TestParamSetLayout(t *testing.T) {
	b := testBackend(t)
	m := load(t, b)
	ad, err := Attach(b, m, testConfig(ModuleList("q_proj", "v_proj"), func(c *LoraConfig) { c.UseDoRA = true }), 1)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, p := range ad.Params.Params {
		if len(groups) == 0 || groups[len(groups)-1] != p.Group {
			groups = append(groups, p.Group)
		}
		if !strings.HasPrefix(p.Name, KeyPrefix) {
			t.Errorf("param %s is not named by its key", p.Name)
		}
	}
	if !slices.Equal(groups, []string{GroupA, GroupB, GroupMagnitude}) {
		t.Errorf("groups %v", groups)
	}
	// 4 layers: A [4, 64], B [64|16, 4], m [64|16].
	if want := 4*4*64 + 2*(64*4+16*4) + 2*(64+16); ad.Params.Len() != want {
		t.Errorf("%d parameters, want %d", ad.Params.Len(), want)
	}
}
