// Package plot draws training curves to PNG with gonum.org/v1/plot.
package plot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Point is one sample of a metric at a training step.
type Point struct {
	Step  int64
	Value float64
}

// Size of the PNG written by LossPlot.
const (
	WidthPx  = 900
	HeightPx = 750
	dpi      = 100
)

// DefaultFileName is the file LossPlot writes when path is a directory.
const DefaultFileName = "loss.png"

var (
	colorTrain = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colorEval  = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colorLR    = color.RGBA{R: 44, G: 160, B: 44, A: 255}
)

// LossPlot writes a PNG of WidthPx×HeightPx pixels to path (or to
// path/loss.png when path is an existing directory). The top panel shows the
// train loss as a line and the eval loss as points joined by a line against
// the step; the bottom panel shows the learning-rate schedule on the same
// step range. NaN and infinite values are skipped; points are drawn in step
// order; empty series leave their panel or legend entry out. The file is
// replaced atomically, so a viewer never sees a half-written image.
func LossPlot(path string, train, eval []Point, lr []Point) (err error) {
	if path == "" {
		return errors.New("plot: empty path")
	}
	if fi, statErr := os.Stat(path); statErr == nil && fi.IsDir() {
		path = filepath.Join(path, DefaultFileName)
	}
	// gonum/plot reports some misuse by panicking; never let that escape.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot: drawing %s: %v", path, r)
		}
	}()

	trainXY, evalXY, lrXY := clean(train), clean(eval), clean(lr)

	lossP := gplot.New()
	lossP.Title.Text = "Loss"
	lossP.Y.Label.Text = "loss"
	lossP.Legend.Top = true
	lossP.Add(plotter.NewGrid())
	if len(trainXY) > 0 {
		l, err := plotter.NewLine(trainXY)
		if err != nil {
			return fmt.Errorf("plot: train loss: %w", err)
		}
		l.Color = colorTrain
		l.Width = vg.Points(1.5)
		lossP.Add(l)
		lossP.Legend.Add("train", l)
	}
	if len(evalXY) > 0 {
		l, s, err := plotter.NewLinePoints(evalXY)
		if err != nil {
			return fmt.Errorf("plot: eval loss: %w", err)
		}
		l.Color = colorEval
		l.Width = vg.Points(1.5)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		s.Color = colorEval
		s.Shape = draw.CircleGlyph{}
		s.Radius = vg.Points(3)
		lossP.Add(l, s)
		lossP.Legend.Add("eval", l, s)
	}
	if len(trainXY) == 0 && len(evalXY) == 0 {
		lossP.Title.Text = "Loss (no data)"
	}

	lrP := gplot.New()
	lrP.Title.Text = "Learning rate"
	lrP.X.Label.Text = "step"
	lrP.Y.Label.Text = "lr"
	lrP.Add(plotter.NewGrid())
	if len(lrXY) > 0 {
		l, err := plotter.NewLine(lrXY)
		if err != nil {
			return fmt.Errorf("plot: learning rate: %w", err)
		}
		l.Color = colorLR
		l.Width = vg.Points(1.5)
		lrP.Add(l)
	} else {
		lrP.Title.Text = "Learning rate (no data)"
	}

	// Share the step range so the two panels line up.
	if lo, hi, ok := stepRange(trainXY, evalXY, lrXY); ok {
		for _, p := range []*gplot.Plot{lossP, lrP} {
			p.X.Min, p.X.Max = lo, hi
		}
	}
	for _, p := range []*gplot.Plot{lossP, lrP} {
		sanitizeRange(&p.X)
		sanitizeRange(&p.Y)
	}

	img := vgimg.NewWith(
		vgimg.UseWH(vg.Length(WidthPx)/dpi*vg.Inch, vg.Length(HeightPx)/dpi*vg.Inch),
		vgimg.UseDPI(dpi),
	)
	dc := draw.New(img)
	tiles := draw.Tiles{
		Rows: 2, Cols: 1,
		PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12),
		PadY: vg.Points(12),
	}
	cs := gplot.Align([][]*gplot.Plot{{lossP}, {lrP}}, tiles, dc)
	lossP.Draw(cs[0][0])
	lrP.Draw(cs[1][0])

	return writeAtomic(path, vgimg.PngCanvas{Canvas: img})
}

// clean drops non-finite values and sorts by step (stable, so repeated
// steps keep their order).
func clean(pts []Point) plotter.XYs {
	kept := make([]Point, 0, len(pts))
	for _, p := range pts {
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			continue
		}
		kept = append(kept, p)
	}
	slices.SortStableFunc(kept, func(a, b Point) int {
		switch {
		case a.Step < b.Step:
			return -1
		case a.Step > b.Step:
			return 1
		}
		return 0
	})
	xys := make(plotter.XYs, len(kept))
	for i, p := range kept {
		xys[i] = plotter.XY{X: float64(p.Step), Y: p.Value}
	}
	return xys
}

func stepRange(series ...plotter.XYs) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		if len(s) == 0 {
			continue
		}
		ok = true
		lo = math.Min(lo, s[0].X) // series are sorted by step
		hi = math.Max(hi, s[len(s)-1].X)
	}
	return lo, hi, ok
}

// sanitizeRange gives an empty or degenerate axis a drawable range: [0, 1]
// without data, and a small window around a single value.
func sanitizeRange(a *gplot.Axis) {
	if math.IsInf(a.Min, 0) || math.IsInf(a.Max, 0) || math.IsNaN(a.Min) || math.IsNaN(a.Max) || a.Min > a.Max {
		a.Min, a.Max = 0, 1
		return
	}
	if a.Min == a.Max {
		d := math.Abs(a.Min) * 0.05
		if d == 0 {
			d = 1
		}
		a.Min, a.Max = a.Min-d, a.Max+d
	}
}

func writeAtomic(path string, png vgimg.PngCanvas) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plot: create dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("plot: create temp file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after a successful rename
	if _, err := png.WriteTo(tmp); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("plot: encode png: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("plot: write png: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("plot: chmod png: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("plot: rename png: %w", err)
	}
	return nil
}
