// Package progress shows training progress: a live bar on a terminal
// (github.com/vbauerster/mpb/v8) and plain, greppable log lines otherwise.
//
// Both modes show the same fields:
//
//	step 10/100 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA 1m2s | mem 1.2 GB
//
// ETA is measured from the first Update, so time spent before training
// (loading, compiling) and the step count of a resumed run do not skew it.
// mem is the resident set size of the process (/proc/self/statm), falling
// back to memory mapped by the Go runtime where /proc is unavailable.
package progress

import (
	"io"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// DefaultEvery is how many steps apart plain-mode lines are printed.
const DefaultEvery = 10

// IsTerminal reports whether f is a terminal; false for nil.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// snapshot is what one display line shows.
type snapshot struct {
	step      int
	loss      float64
	lr        float64
	tokPerSec float64
	eta       time.Duration
	etaKnown  bool
	mem       uint64
}

// Bar displays training progress. Its methods are safe for concurrent use
// and never panic; after Done, Update is ignored and Log writes straight to
// the writer.
type Bar struct {
	out      io.Writer
	total    int
	terminal bool

	// opMu serializes Update, Log, Done and plain-mode writes. It may be
	// held while calling into mpb; stateMu must not be.
	opMu    sync.Mutex
	stateMu sync.Mutex
	cur     snapshot // guarded by stateMu; read by the bar's decorators
	hasCur  bool     // guarded by stateMu

	// Below: guarded by opMu.
	every       int
	done        bool
	anchored    bool
	anchorTime  time.Time
	anchorStep  int
	prevStep    int
	printedStep int
	printedAny  bool

	p   *mpb.Progress
	bar *mpb.Bar

	// Hooks replaced by tests.
	now    func() time.Time
	memory func() uint64
}

// New returns a Bar writing to w (io.Discard when nil) for a run of total
// steps (total <= 0: unknown). With isTerminal a live bar redraws in place
// and Log prints above it; otherwise a plain line is printed every
// DefaultEvery steps (see SetEvery), at the last step, and on Done.
func New(w io.Writer, total int, isTerminal bool) *Bar {
	if w == nil {
		w = io.Discard
	}
	b := &Bar{
		out:      w,
		total:    max(total, 0),
		terminal: isTerminal,
		every:    DefaultEvery,
		now:      time.Now,
		memory:   residentBytes,
	}
	if isTerminal {
		b.p = mpb.New(
			mpb.WithOutput(w),
			// The caller vouched for a terminal, which may be a wrapped
			// writer mpb cannot probe. In mpb v8.16.2 ForceTTY does not
			// imply auto refresh despite its doc, so ask for both.
			mpb.ForceTTY(),
			mpb.WithAutoRefresh(),
			mpb.WithRefreshRate(200*time.Millisecond),
		)
		opts := []mpb.BarOption{
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				s, ok := b.snapshot()
				if !ok {
					s = snapshot{}
				}
				return stepText(s.step, b.total) + " "
			})),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				s, ok := b.snapshot()
				if !ok {
					return " waiting for first step"
				}
				return " | " + metricsText(s)
			})),
		}
		if b.total > 0 {
			// Made with no total and given one afterwards, the bar never
			// completes on its own when the last step arrives: mpb would
			// then stop the display, and a line logged between the last
			// step and Done would be lost. Done ends it.
			b.bar = b.p.AddBar(0, opts...)
			b.bar.SetTotal(int64(b.total), false)
		} else {
			b.bar = b.p.AddSpinner(0, opts...)
		}
	}
	return b
}

// SetEvery sets how many steps apart plain-mode lines are printed (values
// below 1 mean every step). It has no effect on a terminal.
func (b *Bar) SetEvery(n int) {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.every = max(n, 1)
}

// Update records that step (1-based, out of total) finished with the given
// loss, learning rate and throughput.
func (b *Bar) Update(step int, loss, lr, tokPerSec float64) {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.done {
		return
	}
	step = max(step, 0)
	now := b.now()
	s := snapshot{step: step, loss: loss, lr: lr, tokPerSec: tokPerSec, mem: b.memory()}
	first := !b.anchored
	if first {
		b.anchored, b.anchorTime, b.anchorStep = true, now, step
		b.prevStep = step - 1
	}
	switch {
	case b.total > 0 && step >= b.total:
		s.eta, s.etaKnown = 0, true
	case first:
		// One sample gives no rate yet.
	case b.total > 0 && step > b.anchorStep:
		perStep := float64(now.Sub(b.anchorTime)) / float64(step-b.anchorStep)
		eta := perStep * float64(b.total-step)
		if eta >= 0 && eta < float64(math.MaxInt64) {
			s.eta, s.etaKnown = time.Duration(eta), true
		}
	}
	b.stateMu.Lock()
	b.cur, b.hasCur = s, true
	b.stateMu.Unlock()

	if b.terminal {
		b.bar.SetCurrent(int64(step))
		b.prevStep = step
		return
	}
	crossed := floorDiv(step, b.every) > floorDiv(b.prevStep, b.every)
	final := b.total > 0 && step == b.total
	b.prevStep = step
	if crossed || (final && !(b.printedAny && b.printedStep == step)) {
		b.printLocked(s)
	}
}

// Log prints line (a newline is added when missing). On a terminal it
// appears above the bar, which keeps drawing below it.
func (b *Bar) Log(line string) {
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.terminal && !b.done {
		if _, err := b.p.Write([]byte(line)); err == nil {
			return
		}
	}
	_, _ = io.WriteString(b.out, line)
}

// Done stops the display. On a terminal the bar is drawn a last time and
// left in place; in plain mode the latest Update is printed unless it
// already was. Calling Done again does nothing.
func (b *Bar) Done() {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.terminal {
		b.bar.Abort(false) // keeps the bar shown
		b.p.Wait()
		return
	}
	if s, ok := b.snapshot(); ok && !(b.printedAny && b.printedStep == s.step) {
		b.printLocked(s)
	}
}

func (b *Bar) snapshot() (snapshot, bool) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	return b.cur, b.hasCur
}

func (b *Bar) printLocked(s snapshot) {
	b.printedAny, b.printedStep = true, s.step
	_, _ = io.WriteString(b.out, Line(s.step, b.total, s.loss, s.lr, s.tokPerSec, s.eta, s.etaKnown, s.mem)+"\n")
}

// Line formats one plain progress line, e.g.
// "step 10/100 | loss 2.3456 | lr 2e-4 | 1234 tok/s | ETA 1m2s | mem 1.2 GB".
// total <= 0 leaves out "/total"; unknown ETA or memory (0) show "?".
func Line(step, total int, loss, lr, tokPerSec float64, eta time.Duration, etaKnown bool, memBytes uint64) string {
	return stepText(step, total) + " | " + metricsText(snapshot{
		loss: loss, lr: lr, tokPerSec: tokPerSec, eta: eta, etaKnown: etaKnown, mem: memBytes,
	})
}

func stepText(step, total int) string {
	if total > 0 {
		return "step " + strconv.Itoa(step) + "/" + strconv.Itoa(total)
	}
	return "step " + strconv.Itoa(step)
}

func metricsText(s snapshot) string {
	var sb strings.Builder
	sb.WriteString("loss ")
	sb.WriteString(strconv.FormatFloat(s.loss, 'f', 4, 64))
	sb.WriteString(" | lr ")
	sb.WriteString(FormatLR(s.lr))
	sb.WriteString(" | ")
	if finite(s.tokPerSec) && s.tokPerSec >= 0 {
		sb.WriteString(strconv.FormatFloat(s.tokPerSec, 'f', 0, 64))
	} else {
		sb.WriteString("?")
	}
	sb.WriteString(" tok/s | ETA ")
	if s.etaKnown {
		sb.WriteString(s.eta.Round(time.Second).String())
	} else {
		sb.WriteString("?")
	}
	sb.WriteString(" | mem ")
	sb.WriteString(FormatBytes(s.mem))
	return sb.String()
}

// FormatLR writes a learning rate compactly with up to three significant
// digits: 2e-4, 1.5e-5, 3.33e-4; 0 is "0".
func FormatLR(lr float64) string {
	if lr == 0 || !finite(lr) {
		return strconv.FormatFloat(lr, 'g', -1, 64)
	}
	s := strconv.FormatFloat(lr, 'e', 2, 64) // e.g. "2.00e-04"
	mant, exp, ok := strings.Cut(s, "e")
	if !ok {
		return s
	}
	if strings.Contains(mant, ".") {
		mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
	}
	sign := ""
	switch {
	case strings.HasPrefix(exp, "-"):
		sign, exp = "-", exp[1:]
	case strings.HasPrefix(exp, "+"):
		exp = exp[1:]
	}
	exp = strings.TrimLeft(exp, "0")
	if exp == "" {
		exp = "0"
	}
	return mant + "e" + sign + exp
}

// FormatBytes writes a byte count in decimal units: 512 kB, 830 MB, 1.2 GB;
// 0 is "?" (unknown).
func FormatBytes(n uint64) string {
	switch {
	case n == 0:
		return "?"
	case n >= 1e12:
		return strconv.FormatFloat(float64(n)/1e12, 'f', 1, 64) + " TB"
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + " GB"
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 0, 64) + " MB"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + " kB"
	}
	return strconv.FormatUint(n, 10) + " B"
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// residentBytes returns the resident set size of the process, or an
// estimate from the Go runtime when /proc is unavailable, or 0.
func residentBytes() uint64 {
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if n, ok := parseStatm(string(data)); ok {
			return n * uint64(os.Getpagesize())
		}
	}
	return goRuntimeBytes()
}

// parseStatm returns the resident page count, the second field of
// /proc/self/statm.
func parseStatm(s string) (uint64, bool) {
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func goRuntimeBytes() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	var v [2]uint64
	for i, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return 0
		}
		v[i] = s.Value.Uint64()
	}
	if v[1] > v[0] {
		return 0
	}
	return v[0] - v[1]
}
