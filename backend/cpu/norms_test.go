package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/tensor"
)

// ktRMSNorm is RMSNorm from its definition: y = x / sqrt(mean(x²) + eps) * w
// (w nil for none), and 1/rms per row.
func ktRMSNorm(x, w []float64, d int, eps float64) (y, rstd []float64) {
	y = make([]float64, len(x))
	for i := 0; i < len(x); i += d {
		var ss float64
		for _, v := range x[i : i+d] {
			ss += v * v
		}
		rms := math.Sqrt(ss/float64(d) + eps)
		rstd = append(rstd, 1/rms)
		for j, v := range x[i : i+d] {
			y[i+j] = v / rms
			if w != nil {
				y[i+j] *= w[j]
			}
		}
	}
	return y, rstd
}

// ktLayerNorm is LayerNorm from its definition, with the biased variance.
func ktLayerNorm(x, w, bias []float64, d int, eps float64) (y, mean, rstd []float64) {
	y = make([]float64, len(x))
	for i := 0; i < len(x); i += d {
		var s float64
		for _, v := range x[i : i+d] {
			s += v
		}
		mu := s / float64(d)
		var ss float64
		for _, v := range x[i : i+d] {
			ss += (v - mu) * (v - mu)
		}
		sd := math.Sqrt(ss/float64(d) + eps)
		mean, rstd = append(mean, mu), append(rstd, 1/sd)
		for j, v := range x[i : i+d] {
			y[i+j] = (v - mu) / sd
			if w != nil {
				y[i+j] *= w[j]
			}
			if bias != nil {
				y[i+j] += bias[j]
			}
		}
	}
	return y, mean, rstd
}

var ktNormShapes = [][]int{{1, 1}, {5, 7}, {3, 4, 33}, {40, 1031}}

func TestKernelRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	const eps = 1e-5
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, sh := range ktNormShapes {
				for _, withW := range []bool{false, true} {
					for _, alias := range []bool{false, true} {
						what := fmt.Sprintf("%s %v %v w=%v alias=%v", name, tt.dt, sh, withW, alias)
						n, _ := tensor.NumElements(sh)
						d := sh[len(sh)-1]
						xv := ktRand(r, tt.dt, n, 2)
						var wv []float64
						var w *tensor.Tensor
						if withW {
							wv = ktRand(r, tt.dt, d, 1)
							w = ktTensor(t, b, tt.dt, wv, d)
						}
						x := ktTensor(t, b, tt.dt, xv, sh...)
						y := x
						if !alias {
							y, _ = b.Alloc(tt.dt, sh...)
						}
						rstd, _ := b.Alloc(tt.dt, n/d)
						ktOK(t, b.RMSNorm(y, rstd, x, w, eps))
						wy, wr := ktRMSNorm(xv, wv, d, eps)
						ktCheck(t, what+" y", ktValues(t, y), wy, tt.tol)
						ktCheck(t, what+" rstd", ktValues(t, rstd), wr, tt.tol)
					}
				}
			}
		}
	}
}

func TestKernelRMSNormBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const eps = 1e-3
	for name, b := range map[string]*Backend{"threads=1": ktBackend(t, 1), "threads=4": ktBackend(t, 4)} {
		for _, sh := range [][]int{{1, 1}, {3, 5}, {2, 3, 8}} {
			for _, withW := range []bool{false, true} {
				what := fmt.Sprintf("%s %v w=%v", name, sh, withW)
				n, _ := tensor.NumElements(sh)
				d := sh[len(sh)-1]
				xv, rv, pv := ktRand(r, tensor.F64, n, 1.5), ktRand(r, tensor.F64, n, 1), ktRand(r, tensor.F64, d, 1)
				wv := make([]float64, d)
				for j := range wv {
					wv[j] = 1
				}
				if withW {
					wv = ktRand(r, tensor.F64, d, 1)
				}
				weight := func(wv []float64) *tensor.Tensor {
					if !withW {
						return nil
					}
					return ktTensor(t, b, tensor.F64, wv, d)
				}
				obj := func(xv, wv []float64) float64 {
					y, _ := b.Alloc(tensor.F64, sh...)
					rstd, _ := b.Alloc(tensor.F64, n/d)
					ktOK(t, b.RMSNorm(y, rstd, ktTensor(t, b, tensor.F64, xv, sh...), weight(wv), eps))
					return ktDot(ktValues(t, y), rv)
				}
				x, w := ktTensor(t, b, tensor.F64, xv, sh...), weight(wv)
				y, _ := b.Alloc(tensor.F64, sh...)
				rstd, _ := b.Alloc(tensor.F64, n/d)
				ktOK(t, b.RMSNorm(y, rstd, x, w, eps))
				dy := ktTensor(t, b, tensor.F64, rv, sh...)
				dx, _ := b.Alloc(tensor.F64, sh...)
				dw := ktTensor(t, b, tensor.F64, pv, d) // accumulates onto pv
				ktOK(t, b.RMSNormBackward(dx, dw, x, w, rstd, dy))
				wantX := ktGrad(xv, func(xv []float64) float64 { return obj(xv, wv) })
				ktCheck(t, what+" dx", ktValues(t, dx), wantX, ktGradTol)
				// The weight gradient, also when there is no weight (of ones).
				wantW := ktGrad(wv, func(wv []float64) float64 {
					withW0 := withW
					withW = true
					defer func() { withW = withW0 }()
					return obj(xv, wv)
				})
				gotW := ktValues(t, dw)
				for j := range gotW {
					gotW[j] -= pv[j]
				}
				ktCheck(t, what+" dw", gotW, wantW, ktGradTol)

				// Each output alone; dx in dy's place.
				dw2, _ := b.Alloc(tensor.F64, d)
				ktOK(t, b.RMSNormBackward(nil, dw2, x, w, rstd, dy))
				ktCheck(t, what+" dw alone", ktValues(t, dw2), wantW, ktGradTol)
				ktOK(t, b.RMSNormBackward(dy, nil, x, w, rstd, dy))
				ktCheck(t, what+" dx alone in place", ktValues(t, dy), wantX, ktGradTol)

				// F32 against the float64 gradients, where D > 2: for one or
				// two channels dx is nearly zero, a difference of terms of
				// order one, and float32 can only get it to their ulp.
				if d <= 2 {
					continue
				}
				x32, dy32 := ktTensor(t, b, tensor.F32, xv, sh...), ktTensor(t, b, tensor.F32, rv, sh...)
				var w32 *tensor.Tensor
				if withW {
					w32 = ktTensor(t, b, tensor.F32, wv, d)
				}
				y32, _ := b.Alloc(tensor.F32, sh...)
				rstd32, _ := b.Alloc(tensor.F32, n/d)
				dx32, _ := b.Alloc(tensor.F32, sh...)
				dw32, _ := b.Alloc(tensor.F32, d)
				ktOK(t, b.RMSNorm(y32, rstd32, x32, w32, eps))
				ktOK(t, b.RMSNormBackward(dx32, dw32, x32, w32, rstd32, dy32))
				ktCheck(t, what+" dx f32", ktValues(t, dx32), wantX, ktF32(1e-5))
				ktCheck(t, what+" dw f32", ktValues(t, dw32), wantW, ktF32(1e-5))
			}
		}
		// A large case, to run the per-worker partials of dw: F32 against F64.
		const rows, d = 300, 517
		xv, rv := ktRand(r, tensor.F32, rows*d, 1), ktRand(r, tensor.F32, rows*d, 1)
		wv := ktRand(r, tensor.F32, d, 1)
		var grads [2][2][]float64
		for k, dt := range []tensor.DType{tensor.F64, tensor.F32} {
			x, w, dy := ktTensor(t, b, dt, xv, rows, d), ktTensor(t, b, dt, wv, d), ktTensor(t, b, dt, rv, rows, d)
			y, _ := b.Alloc(dt, rows, d)
			rstd, _ := b.Alloc(dt, rows)
			dx, _ := b.Alloc(dt, rows, d)
			dw, _ := b.Alloc(dt, d)
			ktOK(t, b.RMSNorm(y, rstd, x, w, 1e-6))
			ktOK(t, b.RMSNormBackward(dx, dw, x, w, rstd, dy))
			grads[k] = [2][]float64{ktValues(t, dx), ktValues(t, dw)}
		}
		ktCheck(t, name+" large dx f32", grads[1][0], grads[0][0], ktF32(1e-5))
		ktCheck(t, name+" large dw f32", grads[1][1], grads[0][1], ktF32(1e-5))
	}
}

func TestKernelLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	const eps = 1e-5
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, sh := range ktNormShapes {
				for _, opts := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
					for _, alias := range []bool{false, true} {
						what := fmt.Sprintf("%s %v %v w,b=%v alias=%v", name, tt.dt, sh, opts, alias)
						n, _ := tensor.NumElements(sh)
						d := sh[len(sh)-1]
						// A mean to take out. For F32, one far from the
						// spread, which float32 arithmetic on x - mean would
						// get wrong in the last digits that survive; for F64,
						// a small one, as the float64 reference's own
						// rounding of the mean is amplified by mean/spread.
						shift := 3.0
						if tt.dt == tensor.F32 {
							shift = 300
						}
						xv := ktRand(r, tt.dt, n, 2)
						for i := range xv {
							xv[i] = ktRoundTo(tt.dt, xv[i]+shift)
						}
						var wv, bv []float64
						var w, bias *tensor.Tensor
						if opts[0] {
							wv = ktRand(r, tt.dt, d, 1)
							w = ktTensor(t, b, tt.dt, wv, d)
						}
						if opts[1] {
							bv = ktRand(r, tt.dt, d, 1)
							bias = ktTensor(t, b, tt.dt, bv, d)
						}
						x := ktTensor(t, b, tt.dt, xv, sh...)
						y := x
						if !alias {
							y, _ = b.Alloc(tt.dt, sh...)
						}
						mean, _ := b.Alloc(tt.dt, n/d)
						rstd, _ := b.Alloc(tt.dt, n/d)
						ktOK(t, b.LayerNorm(y, mean, rstd, x, w, bias, eps))
						wy, wm, wr := ktLayerNorm(xv, wv, bv, d, eps)
						ktCheck(t, what+" y", ktValues(t, y), wy, tt.tol)
						ktCheck(t, what+" mean", ktValues(t, mean), wm, tt.tol)
						ktCheck(t, what+" rstd", ktValues(t, rstd), wr, tt.tol)
					}
				}
			}
		}
	}
}

func TestKernelLayerNormBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	const eps = 1e-3
	for name, b := range ktBackends(t) {
		for _, sh := range [][]int{{1, 2}, {3, 5}, {2, 3, 8}, {300, 130}} {
			for _, withW := range []bool{false, true} {
				what := fmt.Sprintf("%s %v w=%v", name, sh, withW)
				n, _ := tensor.NumElements(sh)
				d := sh[len(sh)-1]
				xv, rv := ktRand(r, tensor.F64, n, 1.5), ktRand(r, tensor.F64, n, 1)
				pw, pb := ktRand(r, tensor.F64, d, 1), ktRand(r, tensor.F64, d, 1)
				wv, bv := ktRand(r, tensor.F64, d, 1), ktRand(r, tensor.F64, d, 1)
				if !withW {
					for j := range wv {
						wv[j], bv[j] = 1, 0
					}
				}
				affine := withW
				param := func(v []float64) *tensor.Tensor {
					if !affine {
						return nil
					}
					return ktTensor(t, b, tensor.F64, v, d)
				}
				obj := func(xv, wv, bv []float64) float64 {
					y, _ := b.Alloc(tensor.F64, sh...)
					mean, _ := b.Alloc(tensor.F64, n/d)
					rstd, _ := b.Alloc(tensor.F64, n/d)
					ktOK(t, b.LayerNorm(y, mean, rstd, ktTensor(t, b, tensor.F64, xv, sh...), param(wv), param(bv), eps))
					return ktDot(ktValues(t, y), rv)
				}
				x, w := ktTensor(t, b, tensor.F64, xv, sh...), param(wv)
				y, _ := b.Alloc(tensor.F64, sh...)
				mean, _ := b.Alloc(tensor.F64, n/d)
				rstd, _ := b.Alloc(tensor.F64, n/d)
				ktOK(t, b.LayerNorm(y, mean, rstd, x, w, param(bv), eps))
				dy := ktTensor(t, b, tensor.F64, rv, sh...)
				dx, _ := b.Alloc(tensor.F64, sh...)
				dw, db := ktTensor(t, b, tensor.F64, pw, d), ktTensor(t, b, tensor.F64, pb, d)
				ktOK(t, b.LayerNormBackward(dx, dw, db, x, w, mean, rstd, dy))

				var wantX, wantW, wantB []float64
				if n <= 64 { // central differences
					wantX = ktGrad(xv, func(xv []float64) float64 { return obj(xv, wv, bv) })
					affine = true
					wantW = ktGrad(wv, func(wv []float64) float64 { return obj(xv, wv, bv) })
					wantB = ktGrad(bv, func(bv []float64) float64 { return obj(xv, wv, bv) })
					affine = withW
				} else { // the float64 gradient, from its formula, per row
					wantX, wantW, wantB = ktLayerNormGrad(xv, wv, rv, d, eps)
				}
				ktCheck(t, what+" dx", ktValues(t, dx), wantX, ktGradTol)
				gotW, gotB := ktValues(t, dw), ktValues(t, db)
				for j := range d {
					gotW[j] -= pw[j]
					gotB[j] -= pb[j]
				}
				ktCheck(t, what+" dw", gotW, wantW, ktGradTol)
				ktCheck(t, what+" db", gotB, wantB, ktGradTol)

				// Any subset of the outputs; dx in dy's place.
				dw2, _ := b.Alloc(tensor.F64, d)
				ktOK(t, b.LayerNormBackward(nil, dw2, nil, x, w, mean, rstd, dy))
				ktCheck(t, what+" dw alone", ktValues(t, dw2), wantW, ktGradTol)
				db2, _ := b.Alloc(tensor.F64, d)
				ktOK(t, b.LayerNormBackward(nil, nil, db2, x, w, mean, rstd, dy))
				ktCheck(t, what+" db alone", ktValues(t, db2), wantB, ktGradTol)
				ktOK(t, b.LayerNormBackward(dy, nil, nil, x, w, mean, rstd, dy))
				ktCheck(t, what+" dx alone in place", ktValues(t, dy), wantX, ktGradTol)

				// F32 against the float64 gradients, where D > 2: for one or
				// two channels dx is nearly zero, a difference of terms of
				// order one, and float32 can only get it to their ulp.
				if d <= 2 {
					continue
				}
				x32, dy32 := ktTensor(t, b, tensor.F32, xv, sh...), ktTensor(t, b, tensor.F32, rv, sh...)
				var w32 *tensor.Tensor
				if withW {
					w32 = ktTensor(t, b, tensor.F32, wv, d)
				}
				y32, _ := b.Alloc(tensor.F32, sh...)
				m32, _ := b.Alloc(tensor.F32, n/d)
				r32, _ := b.Alloc(tensor.F32, n/d)
				dx32, _ := b.Alloc(tensor.F32, sh...)
				dw32, _ := b.Alloc(tensor.F32, d)
				db32, _ := b.Alloc(tensor.F32, d)
				ktOK(t, b.LayerNorm(y32, m32, r32, x32, w32, nil, eps))
				ktOK(t, b.LayerNormBackward(dx32, dw32, db32, x32, w32, m32, r32, dy32))
				ktCheck(t, what+" dx f32", ktValues(t, dx32), wantX, ktF32(1e-4))
				ktCheck(t, what+" dw f32", ktValues(t, dw32), wantW, ktF32(1e-4))
				ktCheck(t, what+" db f32", ktValues(t, db32), wantB, ktF32(1e-5))
			}
		}
	}
}

// ktLayerNormGrad is LayerNorm's gradient for upstream gradient dy, from the
// textbook formula: with xhat = (x-mean)/sd and g = dy*w,
// dx = (g - mean(g) - xhat*mean(g*xhat))/sd, dw = sum dy*xhat, db = sum dy.
func ktLayerNormGrad(x, w, dy []float64, d int, eps float64) (dx, dw, db []float64) {
	dx, dw, db = make([]float64, len(x)), make([]float64, d), make([]float64, d)
	_, mean, rstd := ktLayerNorm(x, nil, nil, d, eps)
	for r := 0; r < len(x)/d; r++ {
		var mg, mgx float64
		for j := range d {
			xhat := (x[r*d+j] - mean[r]) * rstd[r]
			g := dy[r*d+j] * w[j]
			mg += g / float64(d)
			mgx += g * xhat / float64(d)
			dw[j] += dy[r*d+j] * xhat
			db[j] += dy[r*d+j]
		}
		for j := range d {
			xhat := (x[r*d+j] - mean[r]) * rstd[r]
			dx[r*d+j] = rstd[r] * (dy[r*d+j]*w[j] - mg - xhat*mgx)
		}
	}
	return dx, dw, db
}
