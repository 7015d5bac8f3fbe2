package peft

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	_ "github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// golden is the directory of the golden checkpoint of a variant.
func golden(variant string) string {
	return filepath.Join("..", "models", "testdata", "golden", variant)
}

var base = golden("llama-gqa")

func testBackend(t *testing.T) backend.Backend {
	t.Helper()
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadVariant loads a golden checkpoint.
func loadVariant(t *testing.T, b backend.Backend, dir string) models.Model {
	t.Helper()
	md, err := hf.Resolve(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := models.LoadDir(b, md)
	if err != nil {
		t.Fatal(err)
	}
	return l.Model
}

func load(t *testing.T, b backend.Backend) models.Model { return loadVariant(t, b, base) }

// toDType converts every weight of m to dt on the back end.
func toDType(t *testing.T, b backend.Backend, m models.Model, dt tensor.DType) {
	t.Helper()
	for _, p := range nn.Params(m) {
		v := *p.Var
		if v == nil {
			continue
		}
		c, err := b.Alloc(dt, v.Value.Shape()...)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Convert(c, v.Value); err != nil {
			t.Fatal(err)
		}
		*p.Var = autograd.Const(p.Name, c)
	}
}

// testBatch is a fixed batch of 2 sequences of 8 tokens.
type testBatch struct {
	in     models.Inputs
	labels []int32
}

func newBatch(t *testing.T, b backend.Backend) testBatch {
	t.Helper()
	const B, T = 2, 8
	ids := make([]int32, B*T)
	pos := make([]int32, B*T)
	for i := range ids {
		ids[i] = int32((i*37 + 11) % 100)
		pos[i] = int32(i % T)
	}
	idT, err := autograd.Int32s(b, ids, B, T)
	if err != nil {
		t.Fatal(err)
	}
	posT, err := autograd.Int32s(b, pos, B*T)
	if err != nil {
		t.Fatal(err)
	}
	return testBatch{in: models.Inputs{IDs: idT, Positions: posT}, labels: ids}
}

// logits runs the model on the fixed batch without gradients.
func logits(t *testing.T, b backend.Backend, m models.Model) []float64 {
	t.Helper()
	bt := newBatch(t, b)
	g := autograd.New(b, autograd.NewPool(b))
	defer g.Release()
	var out []float64
	var err error
	g.NoGrad(func() {
		out, err = g.Value(m.Logits(g, m.Forward(g, bt.in)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// loss runs the model's summed loss on the fixed batch, with a backward
// pass when backward is set.
func loss(t *testing.T, b backend.Backend, m models.Model, backward bool) float64 {
	t.Helper()
	bt := newBatch(t, b)
	g := autograd.New(b, autograd.NewPool(b))
	defer g.Release()
	var l *autograd.Var
	if backward {
		l, _ = m.Loss(g, bt.in, bt.labels)
		if err := g.Backward(l, 1); err != nil {
			t.Fatal(err)
		}
	} else {
		g.NoGrad(func() { l, _ = m.Loss(g, bt.in, bt.labels) })
	}
	v, err := g.Value(l)
	if err != nil {
		t.Fatal(err)
	}
	return v[0]
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// relErr is the norm-wise relative error ||a-b|| / ||b||.
func relErr(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

func host(t *testing.T, b backend.Backend, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := autograd.ToHost(b, x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testConfig is a config for tests: targets, rank 4, alpha 8, random init.
func testConfig(targets Modules, mod func(*LoraConfig)) *LoraConfig {
	c := NewLoraConfig(targets)
	c.R, c.LoraAlpha = 4, 8
	c.InitLoraWeights = InitRandom
	if mod != nil {
		mod(c)
	}
	return c
}
