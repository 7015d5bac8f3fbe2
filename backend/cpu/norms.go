package cpu

import (
	"math"

	"github.com/whet-ai/whet/tensor"
)

// The normalisation kernels of backend.Norms. Each views x as rows over its
// last dimension (N rows of D), computes its row statistics in float64, and
// runs in parallel over rows. The weight and bias gradients are sums over
// rows: each of at most Threads contiguous blocks of rows sums into its own
// float64 partials, which are added to dw and db in block order.

// RMSNorm sets y = x / rms(x) * w with rms(x) = sqrt(mean(x²) + eps) over
// each row of x, and stores 1/rms in rstd. w may be nil. y may be x.
func (b *Backend) RMSNorm(y, rstd, x, w *tensor.Tensor, eps float64) error {
	f64, err := useF64("RMSNorm", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return rmsNorm[float64](b, y, rstd, x, w, eps)
	}
	return rmsNorm[float32](b, y, rstd, x, w, eps)
}

func rmsNorm[T Float](b *Backend, y, rstd, x, w *tensor.Tensor, eps float64) error {
	a := kargs[T]{op: "RMSNorm"}
	n, d := a.rows("x", x)
	xs, ys, rs, ws := a.f("x", x), a.f("y", y), a.f("rstd", rstd), a.opt("w", w)
	a.size("y", y, n*d, "x's")
	a.size("rstd", rstd, n, "x's rows")
	a.size("w", w, d, "x's last dimension")
	if a.err != nil {
		return a.err
	}
	b.parallelFor(n, rowGrain(d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, yr := xs[i*d:(i+1)*d], ys[i*d:(i+1)*d]
			yr = yr[:len(xr)]
			r := 1 / math.Sqrt(sumSqF64(xr, 0)/float64(d)+eps)
			rs[i] = T(r)
			rt := T(r)
			if ws == nil {
				for j, v := range xr {
					yr[j] = v * rt
				}
				continue
			}
			wr := ws[:len(xr)]
			for j, v := range xr {
				yr[j] = v * rt * wr[j]
			}
		}
	})
	return nil
}

// ones returns d ones, standing in for an absent weight.
func ones[T Float](d int) []T {
	s := make([]T, d)
	for i := range s {
		s[i] = 1
	}
	return s
}

// RMSNormBackward sets dx and adds dw, either of which may be nil, from x,
// w (nil for none), rstd and dy. With r = rstd and g = dy*w,
//
//	dx = r*g - x * r³ * mean(g*x),   dw += sum over rows of dy*x*r.
//
// dx may be dy.
func (b *Backend) RMSNormBackward(dx, dw, x, w, rstd, dy *tensor.Tensor) error {
	f64, err := useF64("RMSNormBackward", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return rmsNormBackward[float64](b, dx, dw, x, w, rstd, dy)
	}
	return rmsNormBackward[float32](b, dx, dw, x, w, rstd, dy)
}

func rmsNormBackward[T Float](b *Backend, dx, dw, x, w, rstd, dy *tensor.Tensor) error {
	a := kargs[T]{op: "RMSNormBackward"}
	n, d := a.rows("x", x)
	xs, rs, gs := a.f("x", x), a.f("rstd", rstd), a.f("dy", dy)
	ws, dxs, dws := a.opt("w", w), a.opt("dx", dx), a.opt("dw", dw)
	a.size("dy", dy, n*d, "x's")
	a.size("rstd", rstd, n, "x's rows")
	a.size("w", w, d, "x's last dimension")
	a.size("dx", dx, n*d, "x's")
	a.size("dw", dw, d, "x's last dimension")
	if a.err != nil || dx == nil && dw == nil || n == 0 {
		return a.err
	}
	if ws == nil {
		ws = ones[T](d)
	}
	nc := b.numChunks(n, rowGrain(d))
	var part []float64
	if dw != nil {
		part = make([]float64, nc*d)
	}
	b.forChunks(n, nc, func(c, lo, hi int) {
		var p []float64
		if part != nil {
			p = part[c*d : (c+1)*d]
		}
		for i := lo; i < hi; i++ {
			xr, gr := xs[i*d:(i+1)*d], gs[i*d:(i+1)*d]
			gr, wr := gr[:len(xr)], ws[:len(xr)]
			r := float64(rs[i])
			if dxs == nil {
				for j, v := range xr {
					p[j] += float64(gr[j]) * float64(v) * r
				}
				continue
			}
			dot := dot3F64(xr, gr, wr)
			rt, k := T(r), T(r*r*r*dot/float64(d))
			dr := dxs[i*d : (i+1)*d]
			dr = dr[:len(xr)]
			if p == nil {
				for j, v := range xr {
					dr[j] = rt*wr[j]*gr[j] - k*v
				}
				continue
			}
			p = p[:len(xr)]
			for j, v := range xr {
				g := gr[j]
				p[j] += float64(g) * float64(v) * r
				dr[j] = rt*wr[j]*g - k*v
			}
		}
	})
	if dws != nil {
		addPartials(dws, part, nc)
	}
	return nil
}

// addPartials adds the nc partial sums of len(dst) elements each, laid end
// to end in part, to dst, in order, in float64.
func addPartials[T Float](dst []T, part []float64, nc int) {
	m := len(dst)
	for j := range dst {
		s := float64(dst[j])
		for c := 0; c < nc; c++ {
			s += part[c*m+j]
		}
		dst[j] = T(s)
	}
}

// LayerNorm sets y = (x - mean) * rstd * w + b over each row of x, with
// rstd = 1/sqrt(var + eps), the variance the biased one (over D), and stores
// each row's mean and rstd. The mean and variance are computed in two passes
// in float64. w and b may be nil. y may be x.
func (b *Backend) LayerNorm(y, mean, rstd, x, w, bias *tensor.Tensor, eps float64) error {
	f64, err := useF64("LayerNorm", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return layerNorm[float64](b, y, mean, rstd, x, w, bias, eps)
	}
	return layerNorm[float32](b, y, mean, rstd, x, w, bias, eps)
}

func layerNorm[T Float](b *Backend, y, mean, rstd, x, w, bias *tensor.Tensor, eps float64) error {
	a := kargs[T]{op: "LayerNorm"}
	n, d := a.rows("x", x)
	xs, ys, ms, rs := a.f("x", x), a.f("y", y), a.f("mean", mean), a.f("rstd", rstd)
	ws, bs := a.opt("w", w), a.opt("b", bias)
	a.size("y", y, n*d, "x's")
	a.size("mean", mean, n, "x's rows")
	a.size("rstd", rstd, n, "x's rows")
	a.size("w", w, d, "x's last dimension")
	a.size("b", bias, d, "x's last dimension")
	if a.err != nil {
		return a.err
	}
	b.parallelFor(n, rowGrain(d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, yr := xs[i*d:(i+1)*d], ys[i*d:(i+1)*d]
			yr = yr[:len(xr)]
			mu := sumF64(xr) / float64(d)
			r := 1 / math.Sqrt(sumSqF64(xr, mu)/float64(d)+eps)
			ms[i], rs[i] = T(mu), T(r)
			// xhat in float64: with float32 data, x - mean rounded to float32
			// would lose the digits that a large mean shares with x.
			switch {
			case ws != nil && bs != nil:
				wr, br := ws[:len(xr)], bs[:len(xr)]
				for j, v := range xr {
					yr[j] = T((float64(v)-mu)*r)*wr[j] + br[j]
				}
			case ws != nil:
				wr := ws[:len(xr)]
				for j, v := range xr {
					yr[j] = T((float64(v)-mu)*r) * wr[j]
				}
			case bs != nil:
				br := bs[:len(xr)]
				for j, v := range xr {
					yr[j] = T((float64(v)-mu)*r) + br[j]
				}
			default:
				for j, v := range xr {
					yr[j] = T((float64(v) - mu) * r)
				}
			}
		}
	})
	return nil
}

// LayerNormBackward sets dx and adds to dw and db; any may be nil. With
// xhat = (x - mean) * rstd and g = dy*w,
//
//	dx = rstd * (g - mean(g) - xhat*mean(g*xhat)),
//	dw += sum over rows of dy*xhat,   db += sum over rows of dy.
//
// dx may be dy.
func (b *Backend) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dy *tensor.Tensor) error {
	f64, err := useF64("LayerNormBackward", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return layerNormBackward[float64](b, dx, dw, db, x, w, mean, rstd, dy)
	}
	return layerNormBackward[float32](b, dx, dw, db, x, w, mean, rstd, dy)
}

func layerNormBackward[T Float](b *Backend, dx, dw, db, x, w, mean, rstd, dy *tensor.Tensor) error {
	a := kargs[T]{op: "LayerNormBackward"}
	n, d := a.rows("x", x)
	xs, ms, rs, gs := a.f("x", x), a.f("mean", mean), a.f("rstd", rstd), a.f("dy", dy)
	ws, dxs, dws, dbs := a.opt("w", w), a.opt("dx", dx), a.opt("dw", dw), a.opt("db", db)
	a.size("dy", dy, n*d, "x's")
	a.size("mean", mean, n, "x's rows")
	a.size("rstd", rstd, n, "x's rows")
	a.size("w", w, d, "x's last dimension")
	a.size("dx", dx, n*d, "x's")
	a.size("dw", dw, d, "x's last dimension")
	a.size("db", db, d, "x's last dimension")
	if a.err != nil || dx == nil && dw == nil && db == nil || n == 0 {
		return a.err
	}
	if ws == nil {
		ws = ones[T](d)
	}
	nc := b.numChunks(n, rowGrain(d))
	var pw, pb []float64
	if dw != nil {
		pw = make([]float64, nc*d)
	}
	if db != nil {
		pb = make([]float64, nc*d)
	}
	b.forChunks(n, nc, func(c, lo, hi int) {
		var qw, qb []float64
		if pw != nil {
			qw = pw[c*d : (c+1)*d]
		}
		if pb != nil {
			qb = pb[c*d : (c+1)*d]
		}
		for i := lo; i < hi; i++ {
			xr, gr := xs[i*d:(i+1)*d], gs[i*d:(i+1)*d]
			gr, wr := gr[:len(xr)], ws[:len(xr)]
			mu, r := float64(ms[i]), float64(rs[i])
			if qw != nil {
				qw = qw[:len(xr)]
				for j, v := range xr {
					qw[j] += float64(gr[j]) * (float64(v) - mu) * r
				}
			}
			if qb != nil {
				qb = qb[:len(xr)]
				for j, g := range gr {
					qb[j] += float64(g)
				}
			}
			if dxs == nil {
				continue
			}
			var sg, sgx float64 // sums of g and g*xhat
			for j, v := range xr {
				g := float64(gr[j]) * float64(wr[j])
				sg += g
				sgx += g * (float64(v) - mu) * r
			}
			mg, mgx := sg/float64(d), sgx/float64(d)
			dr := dxs[i*d : (i+1)*d]
			dr = dr[:len(xr)]
			for j, v := range xr {
				xhat := (float64(v) - mu) * r
				dr[j] = T(r * (float64(gr[j])*float64(wr[j]) - mg - xhat*mgx))
			}
		}
	})
	if dws != nil {
		addPartials(dws, pw, nc)
	}
	if dbs != nil {
		addPartials(dbs, pb, nc)
	}
	return nil
}
