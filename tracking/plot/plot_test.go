package plot

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func series(n int, f func(i int) float64) []Point {
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = Point{Step: int64(i + 1), Value: f(i + 1)}
	}
	return pts
}

func decode(t *testing.T, path string) image.Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, aa := a.At(x, y).RGBA()
			br, bg, bb, ba := b.At(x, y).RGBA()
			if ar != br || ag != bg || ab != bb || aa != ba {
				return false
			}
		}
	}
	return true
}

func TestLossPlotWritesPNG(t *testing.T) {
	train := series(200, func(i int) float64 { return 3 * math.Exp(-float64(i)/50) })
	eval := []Point{{50, 1.9}, {100, 1.4}, {150, 1.2}, {200, 1.1}}
	lr := series(200, func(i int) float64 { return 2e-4 * float64(200-i) / 200 })
	nan := math.NaN()
	tests := []struct {
		name            string
		train, eval, lr []Point
	}{
		{"full", train, eval, lr},
		{"empty eval", train, nil, lr},
		{"empty lr", train, eval, nil},
		{"all empty", nil, nil, nil},
		{"one point each", []Point{{1, 2.5}}, []Point{{1, 2.6}}, []Point{{1, 1e-4}}},
		{"zero values", []Point{{0, 0}}, nil, []Point{{0, 0}}},
		{"nan and inf", []Point{{1, nan}, {2, 2}, {3, math.Inf(1)}, {4, 1.5}}, []Point{{2, nan}}, []Point{{1, nan}, {2, math.Inf(-1)}}},
		{"only nan", []Point{{1, nan}}, []Point{{1, nan}}, []Point{{1, nan}}},
		{"unsorted and negative", []Point{{30, 1}, {10, 3}, {20, -2}}, []Point{{25, 1.5}, {5, 2}}, []Point{{30, 1e-5}, {-10, 0}}},
		{"huge steps", []Point{{1 << 40, 1}, {1<<40 + 1, 0.5}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "loss.png")
			if err := LossPlot(path, tt.train, tt.eval, tt.lr); err != nil {
				t.Fatal(err)
			}
			img := decode(t, path)
			if b := img.Bounds(); b.Dx() != WidthPx || b.Dy() != HeightPx {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), WidthPx, HeightPx)
			}
			entries, err := os.ReadDir(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("dir holds %d entries, want only loss.png (temp file left?)", len(entries))
			}
		})
	}
}

func TestLossPlotCompare(t *testing.T) {
	a := series(100, func(i int) float64 { return 3 / float64(i) })
	b := series(100, func(i int) float64 { return 2 + math.Sin(float64(i)/5) })
	lr := series(100, func(int) float64 { return 1e-4 })
	withNaN := append(append([]Point{}, a[:50]...), Point{Step: 50, Value: math.NaN()})
	withNaN = append(withNaN, a[50:]...)
	reversed := make([]Point, len(a))
	for i, p := range a {
		reversed[len(a)-1-i] = p
	}
	tests := []struct {
		name         string
		train1, lr1  []Point
		eval1        []Point
		train2, lr2  []Point
		eval2        []Point
		wantIdentity bool
	}{
		{"different train", a, lr, nil, b, lr, nil, false},
		{"eval added", a, lr, nil, a, lr, []Point{{50, 1}}, false},
		{"different lr", a, lr, nil, a, series(100, func(i int) float64 { return 1e-4 * float64(i) }), nil, false},
		{"same input", a, lr, nil, a, lr, nil, true},
		{"nan skipped", a, lr, nil, withNaN, lr, nil, true},
		{"order irrelevant", a, lr, nil, reversed, lr, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p1, p2 := filepath.Join(dir, "1.png"), filepath.Join(dir, "2.png")
			if err := LossPlot(p1, tt.train1, tt.eval1, tt.lr1); err != nil {
				t.Fatal(err)
			}
			if err := LossPlot(p2, tt.train2, tt.eval2, tt.lr2); err != nil {
				t.Fatal(err)
			}
			if got := samePixels(decode(t, p1), decode(t, p2)); got != tt.wantIdentity {
				t.Fatalf("images identical = %v, want %v", got, tt.wantIdentity)
			}
		})
	}
}

func TestLossPlotPaths(t *testing.T) {
	pts := []Point{{1, 2}, {2, 1}}
	tests := []struct {
		name    string
		path    func(dir string) string
		want    func(dir string) string
		wantErr bool
	}{
		{"file", func(d string) string { return filepath.Join(d, "x.png") }, func(d string) string { return filepath.Join(d, "x.png") }, false},
		{"directory", func(d string) string { return d }, func(d string) string { return filepath.Join(d, DefaultFileName) }, false},
		{"missing parent", func(d string) string { return filepath.Join(d, "a", "b", "loss.png") }, func(d string) string { return filepath.Join(d, "a", "b", "loss.png") }, false},
		{"empty", func(string) string { return "" }, nil, true},
		{"parent is file", func(d string) string {
			f := filepath.Join(d, "f")
			_ = os.WriteFile(f, nil, 0o644)
			return filepath.Join(f, "loss.png")
		}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := LossPlot(tt.path(dir), pts, nil, pts)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			decode(t, tt.want(dir))
		})
	}
}

func TestLossPlotOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	if err := LossPlot(path, []Point{{1, 1}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	first := decode(t, path)
	if err := LossPlot(path, series(10, func(i int) float64 { return float64(i) }), nil, nil); err != nil {
		t.Fatal(err)
	}
	if samePixels(first, decode(t, path)) {
		t.Fatal("second LossPlot did not replace the image")
	}
}
