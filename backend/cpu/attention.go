package cpu

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Fused attention, exact and flash-attention style: no Tq x Tk matrix of
// scores is ever held.
//
// Queries are cut into blocks: the G = Hq/Hkv query heads of one key-value
// head, for bq consecutive queries, gathered into one matrix of G*bq rows
// (about attnRowsTarget), so that each product reads the head's keys and
// values once for all G heads. A block covers the contiguous key range
// [lo, hi) that any of its queries may attend (the causal bound above; the
// sliding window and the documents of Segments below: a packed row's
// documents are contiguous, so a block skips the other documents' keys;
// ids that repeat further on stay correct through a per-key test), attnKc
// keys at a time, so a worker's scratch is G*bq x attnKc scores however long
// the sequence. The products are single-goroutine GEMMs (gemmSerial) that
// read K and V in place through their leading dimension Hkv*D. The forward
// pass keeps each row's running maximum and sum across chunks (the online
// softmax), rescales the accumulated output when the maximum grows, and
// normalises it at the end, per row of D values rather than per score. Per
// score, the work outside the GEMMs is a vector pass each for the maximum,
// exp and the sum (plus the segment test, only for a document whose tokens
// are not contiguous).
//
// The backward pass recomputes P = exp(S - LSE) and, with Delta_i =
// rowsum(dO_i * O_i):
//
//	dV += P^T dO,  dP = dO V^T,  dS = P * (dP - Delta),
//	dQ = scale * dS K,  dK += scale * dS^T Q.
//
// A backward task takes a stripe of consecutive query blocks of one
// key-value head: it sets dQ of its queries, which no other task touches, and
// adds dK and dV of the keys they attend into an accumulator of its own
// (D x keys, transposed so that the products pack P and dS by rows). The
// stripes of a head are then summed, in order, into dK and dV. A head is cut
// into as few stripes of about equal cost as keep every thread busy (one,
// when there are more heads than threads), so the split costs no recomputed
// products, only a sum over accumulators. Tasks run largest first, and every
// output element is summed in a fixed order whatever the thread count or
// scheduling, so results are deterministic.
//
// exp is the one costly elementwise operation per score: it goes through
// expBlock (with sumF64 and rowMax), which run eight lanes at a time in
// vector code where the CPU has it.

// Block sizes.
const (
	attnRowsTarget = 128 // stacked rows (query heads x queries) per query block
	attnKc         = 256 // keys per chunk of scores
)

// attnDims are the validated sizes of an attention call.
type attnDims struct {
	b, tq, tk, hq, hkv, d int
	g                     int // query heads per key-value head
	window                int
	scale                 float64
	bq                    int // queries per query block (attnChooseBq)
	direct                int // attnDirectCols
}

// attnRow bounds the keys one query attends: positions [lo, hi), all of
// them when mask is false, otherwise only those of segment seg (a document
// whose tokens are not contiguous in the row). lo >= hi means no key.
type attnRow struct {
	lo, hi int
	seg    int32
	mask   bool
}

func (r attnRow) empty() bool { return r.lo >= r.hi }

// Attention computes a.Out, and a.LSE when it is not nil, from a.Q, a.K, a.V.
func (b *Backend) Attention(a *backend.AttentionArgs) error {
	d, err := attnValidate(a, false)
	if err != nil {
		return err
	}
	if a.Q.DType() == tensor.F64 {
		return attnForward[float64](b, a, d)
	}
	return attnForward[float32](b, a, d)
}

// AttentionBackward computes a.DQ, a.DK and a.DV (those not nil) from a.Q,
// a.K, a.V, a.Out, a.LSE and a.DOut, overwriting them.
func (b *Backend) AttentionBackward(a *backend.AttentionArgs) error {
	d, err := attnValidate(a, true)
	if err != nil {
		return err
	}
	if a.Q.DType() == tensor.F64 {
		return attnBackward[float64](b, a, d)
	}
	return attnBackward[float32](b, a, d)
}

// attnValidate checks the operands of a forward (or backward) pass and
// returns their sizes.
func attnValidate(a *backend.AttentionArgs, backward bool) (attnDims, error) {
	var d attnDims
	pass := "attention"
	if backward {
		pass = "attention backward"
	}
	if a == nil {
		return d, errors.New(pass + ": nil arguments")
	}
	for _, op := range []struct {
		name string
		t    *tensor.Tensor
	}{{"Q", a.Q}, {"K", a.K}, {"V", a.V}} {
		if op.t == nil {
			return d, fmt.Errorf("%s: %s is nil", pass, op.name)
		}
		if op.t.Rank() != 4 {
			return d, fmt.Errorf("%s: %s has shape %v, want 4 dimensions [B, T, H, D]", pass, op.name, op.t.Shape())
		}
	}
	dt := a.Q.DType()
	if dt != tensor.F32 && dt != tensor.F64 {
		return d, fmt.Errorf("%s: Q has dtype %v, want f32 or f64", pass, dt)
	}
	d.b, d.tq, d.hq, d.d = a.Q.Dim(0), a.Q.Dim(1), a.Q.Dim(2), a.Q.Dim(3)
	d.tk, d.hkv = a.K.Dim(1), a.K.Dim(2)
	if a.K.Dim(0) != d.b || a.K.Dim(3) != d.d {
		return d, fmt.Errorf("%s: K has shape %v, want [%d, Tk, Hkv, %d] to match Q %v", pass, a.K.Shape(), d.b, d.d, a.Q.Shape())
	}
	kShape := a.K.Shape()
	if !slices.Equal(a.V.Shape(), kShape) {
		return d, fmt.Errorf("%s: V has shape %v, want K's shape %v", pass, a.V.Shape(), kShape)
	}
	switch {
	case d.d == 0:
		return d, fmt.Errorf("%s: Q has shape %v: head dimension D is 0", pass, a.Q.Shape())
	case d.hkv == 0:
		return d, fmt.Errorf("%s: K has shape %v: no key-value heads", pass, kShape)
	case d.hq%d.hkv != 0:
		return d, fmt.Errorf("%s: Q has %d heads, not a multiple of K's %d heads", pass, d.hq, d.hkv)
	case d.tk < d.tq:
		return d, fmt.Errorf("%s: K has %d positions, fewer than Q's %d (want Tk >= Tq)", pass, d.tk, d.tq)
	case a.Window < 0:
		return d, fmt.Errorf("%s: negative Window %d", pass, a.Window)
	}
	d.g = d.hq / d.hkv
	d.window = a.Window
	d.scale = a.Scale
	if d.scale == 0 {
		d.scale = 1 / math.Sqrt(float64(d.d))
	}
	qShape := a.Q.Shape()
	lseShape := []int{d.b, d.hq, d.tq}
	ops := []struct {
		name     string
		t        *tensor.Tensor
		shape    []int
		required bool
	}{
		{"K", a.K, kShape, true},
		{"V", a.V, kShape, true},
		{"Out", a.Out, qShape, true},
		{"LSE", a.LSE, lseShape, backward},
	}
	if backward {
		ops = append(ops, []struct {
			name     string
			t        *tensor.Tensor
			shape    []int
			required bool
		}{
			{"DOut", a.DOut, qShape, true},
			{"DQ", a.DQ, qShape, false},
			{"DK", a.DK, kShape, false},
			{"DV", a.DV, kShape, false},
		}...)
	}
	for _, op := range ops {
		if op.t == nil {
			if op.required {
				return d, fmt.Errorf("%s: %s is nil", pass, op.name)
			}
			continue
		}
		if op.t.DType() != dt {
			return d, fmt.Errorf("%s: %s has dtype %v, want Q's %v", pass, op.name, op.t.DType(), dt)
		}
		if !slices.Equal(op.t.Shape(), op.shape) {
			return d, fmt.Errorf("%s: %s has shape %v, want %v", pass, op.name, op.t.Shape(), op.shape)
		}
	}
	if s := a.Segments; s != nil {
		if s.DType() != tensor.I32 {
			return d, fmt.Errorf("%s: Segments has dtype %v, want i32", pass, s.DType())
		}
		if !slices.Equal(s.Shape(), []int{d.b, d.tk}) {
			return d, fmt.Errorf("%s: Segments has shape %v, want [B, Tk] = [%d, %d]", pass, s.Shape(), d.b, d.tk)
		}
	}
	return d, nil
}

// attnOperands are the elements of a call's operands (nil for those
// absent).
type attnOperands[T Float] struct {
	q, k, v, out, lse, dout, dq, dk, dv []T
	segs                                []int32
}

// attnKV returns x ([B, Tk, Hkv, D]) from key lo on of key-value head h in
// batch row b: a matrix of D columns with leading dimension Hkv*D.
func attnKV[T Float](d *attnDims, x []T, b, h, lo int) []T {
	return x[((b*d.tk+lo)*d.hkv+h)*d.d:]
}

// attnFetch returns the elements of a's operands; pass names the call in
// errors.
func attnFetch[T Float](a *backend.AttentionArgs, pass string) (o attnOperands[T], err error) {
	for _, op := range []struct {
		name string
		t    *tensor.Tensor
		dst  *[]T
	}{
		{"Q", a.Q, &o.q}, {"K", a.K, &o.k}, {"V", a.V, &o.v}, {"Out", a.Out, &o.out}, {"LSE", a.LSE, &o.lse},
		{"DOut", a.DOut, &o.dout}, {"DQ", a.DQ, &o.dq}, {"DK", a.DK, &o.dk}, {"DV", a.DV, &o.dv},
	} {
		if *op.dst, err = optFloats[T](pass+": "+op.name, op.t); err != nil {
			return o, err
		}
	}
	if a.Segments != nil {
		if o.segs, err = Int32s(a.Segments); err != nil {
			return o, fmt.Errorf("%s: Segments: %w", pass, err)
		}
	}
	return o, nil
}

// attnRows returns the key bounds of every query, [B*Tq] in (b, i) order.
// Query i sits at key position p = i + Tk - Tq; it attends keys from
// max(p-Window+1, first position of its document) to p. A document whose
// tokens are not one contiguous run needs the per-key segment test (mask).
func attnRows(d *attnDims, segs []int32) []attnRow {
	rows := make([]attnRow, d.b*d.tq)
	off := d.tk - d.tq
	type doc struct {
		first  int
		contig bool
	}
	var (
		docs   map[int32]doc
		first  []int  // first position of each key's document
		contig []bool // whether each key's document is one run
	)
	if segs != nil {
		docs = map[int32]doc{}
		first = make([]int, d.tk)
		contig = make([]bool, d.tk)
	}
	for b := 0; b < d.b; b++ {
		var sb []int32
		if segs != nil {
			sb = segs[b*d.tk : (b+1)*d.tk]
			clear(docs)
			// Runs of equal ids: a document seen in an earlier run is not
			// contiguous.
			for j := 0; j < d.tk; {
				e := j + 1
				for e < d.tk && sb[e] == sb[j] {
					e++
				}
				if id := sb[j]; id >= 0 {
					if dc, ok := docs[id]; ok {
						dc.contig = false
						docs[id] = dc
					} else {
						docs[id] = doc{first: j, contig: true}
					}
				}
				j = e
			}
			for j := 0; j < d.tk; {
				e := j + 1
				for e < d.tk && sb[e] == sb[j] {
					e++
				}
				dc := docs[sb[j]]
				for p := j; p < e; p++ {
					first[p], contig[p] = dc.first, dc.contig
				}
				j = e
			}
		}
		for i := 0; i < d.tq; i++ {
			p := i + off
			r := attnRow{hi: p + 1}
			if d.window > 0 {
				r.lo = max(0, p-d.window+1)
			}
			if sb != nil {
				if id := sb[p]; id < 0 {
					r = attnRow{}
				} else {
					r.lo = max(r.lo, first[p])
					r.seg = id
					r.mask = !contig[p]
				}
			}
			rows[b*d.tq+i] = r
		}
	}
	return rows
}

// attnRange returns the keys [lo, hi) that cover every row of rows, and
// lo >= hi when none attends any key.
func attnRange(rows []attnRow) (lo, hi int) {
	lo, hi = math.MaxInt, 0
	for _, r := range rows {
		if !r.empty() {
			lo, hi = min(lo, r.lo), max(hi, r.hi)
		}
	}
	if lo >= hi {
		return 0, 0
	}
	return lo, hi
}

// attnFree keeps scratch buffers of one element type for reuse across calls,
// so that a steady stream of attention calls allocates (and zeroes) no
// scratch. What it holds is bounded: at most attnFreeMax buffers of at most
// attnFreeElems elements in all.
type attnFree[T Float] struct {
	mu    sync.Mutex
	bufs  [][]T
	elems int // sum of the buffers' capacities
}

const (
	attnFreeMax   = 64
	attnFreeElems = 1 << 24
)

var (
	attnFree32 attnFree[float32]
	attnFree64 attnFree[float64]
)

func attnFreeList[T Float]() *attnFree[T] {
	if f, ok := any(&attnFree32).(*attnFree[T]); ok {
		return f
	}
	return any(&attnFree64).(*attnFree[T])
}

// get returns a buffer of n elements, the smallest large enough that the
// list holds, or a new one.
func (f *attnFree[T]) get(n int) []T {
	f.mu.Lock()
	best := -1
	for i, s := range f.bufs {
		if cap(s) >= n && (best < 0 || cap(s) < cap(f.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		s := f.bufs[best]
		f.bufs = slices.Delete(f.bufs, best, best+1)
		f.elems -= cap(s)
		f.mu.Unlock()
		return s[:n]
	}
	f.mu.Unlock()
	return make([]T, n, (n+1023)/1024*1024)
}

// put returns a buffer for reuse, dropping the smallest buffers it holds
// (or this one) to stay within bounds.
func (f *attnFree[T]) put(s []T) {
	if cap(s) > attnFreeElems {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bufs = append(f.bufs, s)
	f.elems += cap(s)
	for len(f.bufs) > attnFreeMax || f.elems > attnFreeElems {
		i := 0
		for j, b := range f.bufs {
			if cap(b) < cap(f.bufs[i]) {
				i = j
			}
		}
		f.elems -= cap(f.bufs[i])
		f.bufs = slices.Delete(f.bufs, i, i+1)
	}
}

// attnWorkers holds each worker's scratch and first error.
type attnWorkers[T Float] struct {
	size int
	bufs [][]T
	errs []error
}

func newAttnWorkers[T Float](threads, size int) *attnWorkers[T] {
	return &attnWorkers[T]{size: size, bufs: make([][]T, threads), errs: make([]error, threads)}
}

// scratch returns worker w's buffer, taken on first use.
func (s *attnWorkers[T]) scratch(w int) []T {
	if s.bufs[w] == nil {
		s.bufs[w] = attnFreeList[T]().get(s.size)
	}
	return s.bufs[w]
}

// done returns the buffers and the first error.
func (s *attnWorkers[T]) done() error {
	f := attnFreeList[T]()
	for _, b := range s.bufs {
		if b != nil {
			f.put(b)
		}
	}
	for _, err := range s.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// attnChooseBq sets d.bq, the queries per block: G*bq stacked rows near
// attnRowsTarget, fewer where that leaves under four blocks per thread.
func attnChooseBq(d *attnDims, threads int) {
	bq := max(8, attnRowsTarget/max(d.g, 1))
	for bq > 16 && d.b*d.hkv*((d.tq+bq-1)/bq) < 4*threads {
		bq /= 2
	}
	d.bq = max(1, min(bq, d.tq))
}

// attnPlan sets the sizes of blocks and products for element type T.
func attnPlan[T Float](d *attnDims, be *Backend) {
	attnChooseBq(d, be.threads)
	var zero T
	if _, ok := any(zero).(float32); ok {
		d.direct = attnDirectCols(be)
	}
}

// attnTask is work on key-value head h in batch row b: queries [i0, i1) of
// its G query heads (forward), or query blocks [i0, i1) (backward), with the
// keys [lo, hi) that they attend.
type attnTask struct {
	b, h    int
	i0, i1  int
	lo, hi  int
	cost    int
	ordinal int // the task's place before sorting
	acc     int // backward: the offset of the task's dK and dV accumulators
}

// qBlockTasks appends the query blocks of every (b, key-value head).
func qBlockTasks(d *attnDims, rows []attnRow, tasks []attnTask) []attnTask {
	for b := 0; b < d.b; b++ {
		for i0 := 0; i0 < d.tq; i0 += d.bq {
			i1 := min(i0+d.bq, d.tq)
			lo, hi := attnRange(rows[b*d.tq+i0 : b*d.tq+i1])
			for h := 0; h < d.hkv; h++ {
				tasks = append(tasks, attnTask{b: b, h: h, i0: i0, i1: i1, lo: lo, hi: hi,
					cost: d.g * (i1 - i0) * (hi - lo)})
			}
		}
	}
	return tasks
}

// scheduleLargestFirst orders tasks by decreasing cost (ties in their
// original order), so that the dynamic scheduler ends with small tasks.
func scheduleLargestFirst(tasks []attnTask) {
	for i := range tasks {
		tasks[i].ordinal = i
	}
	slices.SortFunc(tasks, func(x, y attnTask) int {
		if c := cmp.Compare(y.cost, x.cost); c != 0 {
			return c
		}
		return cmp.Compare(x.ordinal, y.ordinal)
	})
}

// attnGather copies queries [i0, i1) of the G query heads of key-value head
// kvh in batch row b from x ([B, Tq, Hq, D]) into dst, stacked head by head:
// row g*(i1-i0) + (i-i0).
func attnGather[T Float](d *attnDims, dst, x []T, b, kvh, i0, i1 int) {
	m := i1 - i0
	for g := 0; g < d.g; g++ {
		h := kvh*d.g + g
		for i := i0; i < i1; i++ {
			copy(dst[(g*m+i-i0)*d.d:][:d.d], x[((b*d.tq+i)*d.hq+h)*d.d:][:d.d])
		}
	}
}

// attnScatter is attnGather's inverse: it writes the stacked rows of src
// into x, each multiplied by f[row] when f is not nil.
func attnScatter[T Float](d *attnDims, x, src, f []T, b, kvh, i0, i1 int) {
	m := i1 - i0
	for g := 0; g < d.g; g++ {
		h := kvh*d.g + g
		for i := i0; i < i1; i++ {
			r := g*m + i - i0
			dst, s := x[((b*d.tq+i)*d.hq+h)*d.d:][:d.d], src[r*d.d:][:d.d]
			if f == nil {
				copy(dst, s)
				continue
			}
			c := f[r]
			for j, v := range s {
				dst[j] = c * v
			}
		}
	}
}

// attnZero clears queries [i0, i1) of the G query heads of key-value head
// kvh in x ([B, Tq, Hq, D]).
func attnZero[T Float](d *attnDims, x []T, b, kvh, i0, i1 int) {
	for i := i0; i < i1; i++ {
		clear(x[((b*d.tq+i)*d.hq+kvh*d.g)*d.d:][:d.g*d.d])
	}
}

func attnForward[T Float](be *Backend, a *backend.AttentionArgs, d attnDims) error {
	o, err := attnFetch[T](a, "attention")
	if err != nil {
		return err
	}
	attnPlan[T](&d, be)
	rows := attnRows(&d, o.segs)
	tasks := qBlockTasks(&d, rows, nil)
	scheduleLargestFirst(tasks)
	size := 0
	for _, t := range tasks {
		rs := d.g * (t.i1 - t.i0)
		size = max(size, rs*(2*d.d+min(t.hi-t.lo, attnKc)+3))
	}
	ws := newAttnWorkers[T](be.threads, size)
	be.parallelTasks(len(tasks), func(w, i int) {
		if ws.errs[w] == nil {
			ws.errs[w] = attnForwardBlock(be, &d, &o, rows, &tasks[i], ws.scratch(w))
		}
	})
	return ws.done()
}

// attnForwardBlock computes Out and LSE for a query block, a chunk of at
// most attnKc keys at a time with the online softmax: each row keeps its
// running maximum and sum, and the accumulated output is rescaled when the
// maximum grows.
func attnForwardBlock[T Float](be *Backend, d *attnDims, o *attnOperands[T], rows []attnRow, t *attnTask, buf []T) error {
	m, n := t.i1-t.i0, t.hi-t.lo
	rs, dd := d.g*m, d.d // stacked rows, head dimension
	negInf := T(math.Inf(-1))
	lseAt := func(r int) int { return (t.b*d.hq+t.h*d.g+r/m)*d.tq + t.i0 + r%m }
	if n == 0 {
		attnZero(d, o.out, t.b, t.h, t.i0, t.i1)
		if o.lse != nil {
			for r := 0; r < rs; r++ {
				o.lse[lseAt(r)] = negInf
			}
		}
		return nil
	}
	nc := min(n, attnKc)
	qg, og, buf := buf[:rs*dd], buf[rs*dd:2*rs*dd], buf[2*rs*dd:]
	s, buf := buf[:rs*nc], buf[rs*nc:]
	mx, sum, alpha := buf[:rs], buf[rs:2*rs], buf[2*rs:3*rs]
	attnGather(d, qg, o.q, t.b, t.h, t.i0, t.i1)
	brows := rows[t.b*d.tq+t.i0:][:m]
	for r := range mx {
		mx[r], sum[r] = negInf, 0
	}
	for c0 := t.lo; c0 < t.hi; c0 += nc {
		c1 := min(c0+nc, t.hi)
		w := c1 - c0
		s := s[:rs*w]
		ldk := d.hkv * dd
		if err := gemmSerial(be, false, true, rs, w, dd, T(d.scale), qg, dd, attnKV(d, o.k, t.b, t.h, c0), ldk, 0, s, w); err != nil {
			return err
		}
		var segs []int32
		if o.segs != nil {
			segs = o.segs[t.b*d.tk+c0:][:w]
		}
		rescale := false
		for r := 0; r < rs; r++ {
			row := brows[r%m]
			sr := s[r*w : (r+1)*w]
			rl, rh := max(row.lo, c0)-c0, min(row.hi, c1)-c0
			alpha[r] = 1
			if rl >= rh {
				clear(sr)
				continue
			}
			clear(sr[:rl])
			clear(sr[rh:])
			v := sr[rl:rh]
			if row.mask {
				attnMask(v, segs[rl:rh], row.seg)
			}
			cm := rowMax(v)
			if cm == negInf { // every key of the chunk masked
				clear(v)
				continue
			}
			if cm <= mx[r] {
				sum[r] += T(attnExpSum(v, mx[r]))
				continue
			}
			if c0 > t.lo {
				alpha[r] = T(math.Exp(float64(mx[r] - cm))) // 0 while mx is -Inf
				rescale = true
			}
			mx[r] = cm
			sum[r] = sum[r]*alpha[r] + T(attnExpSum(v, cm))
		}
		beta := T(1)
		if c0 == t.lo {
			beta = 0
		} else if rescale {
			for r, a := range alpha {
				if a != 1 {
					or := og[r*dd : (r+1)*dd]
					for j := range or {
						or[j] *= a
					}
				}
			}
		}
		if err := gemmNN(be, d.direct, rs, dd, w, 1, s, w, attnKV(d, o.v, t.b, t.h, c0), ldk, beta, og, dd); err != nil {
			return err
		}
	}
	inv := alpha
	for r := range inv {
		inv[r] = 0
		if sum[r] > 0 {
			inv[r] = 1 / sum[r]
		}
		if o.lse != nil {
			o.lse[lseAt(r)] = mx[r] + T(math.Log(float64(sum[r])))
		}
	}
	attnScatter(d, o.out, og, inv, t.b, t.h, t.i0, t.i1)
	return nil
}

// attnMask sets the scores of keys of another segment than seg to -Inf.
func attnMask[T Float](v []T, sg []int32, seg int32) {
	negInf := T(math.Inf(-1))
	for j, id := range sg[:len(v)] {
		if id != seg {
			v[j] = negInf
		}
	}
}

// attnExpSum replaces v by exp(v - shift) and returns their sum, in
// float64: expBlock's vector exp where the CPU has one, then sumF64.
func attnExpSum[T Float](v []T, shift T) float64 {
	expBlock(v, v, 1, -shift)
	return sumF64(v)
}

// attnGradRow turns a row of scores s and of dP = dO V^T over keys [rl, rh)
// into P = exp(s - lse) (in s) and dS = P * (dP - delta) (in dp), where keys
// of another segment (sg, when not nil) get 0, and zeroes both outside.
func attnGradRow[T Float](s, dp []T, rl, rh int, lse, delta T, sg []int32, seg int32) {
	if rl >= rh {
		clear(s)
		clear(dp)
		return
	}
	clear(s[:rl])
	clear(dp[:rl])
	clear(s[rh:])
	clear(dp[rh:])
	sv := s[rl:rh]
	dv := dp[rl:rh]
	dv = dv[:len(sv)]
	if sg != nil {
		attnMask(sv, sg[rl:rh], seg)
	}
	expBlock(sv, sv, 1, -lse)
	for j, p := range sv {
		dv[j] = p * (dv[j] - delta)
	}
}

func attnBackward[T Float](be *Backend, a *backend.AttentionArgs, d attnDims) error {
	o, err := attnFetch[T](a, "attention backward")
	if err != nil {
		return err
	}
	if o.dq == nil && o.dk == nil && o.dv == nil {
		return nil
	}
	attnPlan[T](&d, be)
	rows := attnRows(&d, o.segs)
	// delta[b, h, i] = rowsum(dO * O) of query i of head h.
	delta := make([]T, d.b*d.hq*d.tq)
	be.parallelFor(d.b*d.tq, max(1, 4096/(d.hq*d.d+1)), func(lo, hi int) {
		for bi := lo; bi < hi; bi++ {
			b, i := bi/d.tq, bi%d.tq
			for h := 0; h < d.hq; h++ {
				off := (bi*d.hq + h) * d.d
				x, y := o.dout[off:off+d.d], o.out[off:off+d.d]
				var s T
				for j, v := range x {
					s += v * y[j]
				}
				delta[(b*d.hq+h)*d.tq+i] = s
			}
		}
	})
	bw := attnBack[T]{be: be, d: &d, o: &o, rows: rows, delta: delta}
	nb := (d.tq + d.bq - 1) / d.bq
	bw.ranges = make([][2]int, d.b*nb)
	for b := 0; b < d.b; b++ {
		for qb := 0; qb < nb; qb++ {
			i0 := qb * d.bq
			lo, hi := attnRange(rows[b*d.tq+i0 : b*d.tq+min(i0+d.bq, d.tq)])
			bw.ranges[b*nb+qb] = [2]int{lo, hi}
		}
	}

	// Tasks: the query blocks of each (b, key-value head), in stripes of
	// consecutive blocks of about equal cost. A task sets dQ of its blocks
	// and accumulates dK and dV of its keys in a buffer of its own; the
	// buffers are then summed in stripe order.
	stripes := attnStripes(d.b*d.hkv, be.threads, nb)
	wantKV := o.dk != nil || o.dv != nil
	nkv := 0 // dK and dV: the accumulators per key
	if o.dk != nil {
		nkv++
	}
	if o.dv != nil {
		nkv++
	}
	tasks := make([]attnTask, 0, d.b*d.hkv*stripes)
	first := make([]int, d.b*d.hkv+1) // the tasks of (b, h) are tasks[first[b*Hkv+h]:first[b*Hkv+h+1]]
	accLen := 0
	costs := make([]int, nb)
	for b := 0; b < d.b; b++ {
		for qb := range costs {
			r := bw.ranges[b*nb+qb]
			costs[qb] = min(d.bq, d.tq-qb*d.bq) * (r[1] - r[0])
		}
		bounds := attnSplit(costs, stripes)
		for h := 0; h < d.hkv; h++ {
			first[b*d.hkv+h] = len(tasks)
			for st := 0; st+1 < len(bounds); st++ {
				t := attnTask{b: b, h: h, i0: bounds[st], i1: bounds[st+1], lo: d.tk, acc: accLen}
				for qb := t.i0; qb < t.i1; qb++ {
					r := bw.ranges[b*nb+qb]
					t.cost += costs[qb]
					if r[0] < r[1] {
						t.lo, t.hi = min(t.lo, r[0]), max(t.hi, r[1])
					}
				}
				t.lo = min(t.lo, t.hi)
				if wantKV {
					accLen += nkv * d.d * (t.hi - t.lo)
				}
				tasks = append(tasks, t)
			}
		}
	}
	first[d.b*d.hkv] = len(tasks)
	var acc []T
	if accLen > 0 {
		acc = attnFreeList[T]().get(accLen)
		defer attnFreeList[T]().put(acc)
	}
	order := make([]int, len(tasks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return cmp.Compare(tasks[y].cost, tasks[x].cost) })
	ws := newAttnWorkers[T](be.threads, d.g*d.bq*(3*d.d+2*min(d.tk, attnKc)))
	be.parallelTasks(len(tasks), func(w, i int) {
		if ws.errs[w] != nil {
			return
		}
		t := &tasks[order[i]]
		var a *attnAcc[T]
		if wantKV {
			a = bw.newAcc(acc[t.acc:], t.lo, t.hi)
		}
		buf := ws.scratch(w)
		for qb := t.i0; qb < t.i1 && ws.errs[w] == nil; qb++ {
			r := bw.ranges[t.b*nb+qb]
			ws.errs[w] = bw.block(t.b, t.h, qb, r[0], r[1], buf, true, a)
		}
	})
	if err := ws.done(); err != nil || !wantKV {
		return err
	}

	// dK and dV: the sum of the stripes' accumulators, in parallel over
	// (b, key-value head, block of 64 keys).
	const kb = 64
	nkb := (d.tk + kb - 1) / kb
	be.parallelFor(d.b*d.hkv*nkb, 1, func(lo, hi int) {
		for u := lo; u < hi; u++ {
			bh, k0 := u/nkb, u%nkb*kb
			k1 := min(k0+kb, d.tk)
			for _, x := range []struct {
				dst []T
				at  int // the accumulator's place among a task's
			}{{o.dk, 0}, {o.dv, nkv - 1}} {
				if x.dst == nil {
					continue
				}
				b, h := bh/d.hkv, bh%d.hkv
				for k := k0; k < k1; k++ {
					clear(attnKV(&d, x.dst, b, h, k)[:d.d])
				}
				for ti := first[bh]; ti < first[bh+1]; ti++ {
					t := &tasks[ti]
					n := t.hi - t.lo
					j0, j1 := max(k0, t.lo), min(k1, t.hi)
					if j0 >= j1 {
						continue
					}
					src := acc[t.acc+x.at*d.d*n:][:d.d*n]
					for k := j0; k < j1; k++ {
						row := attnKV(&d, x.dst, b, h, k)[:d.d]
						for c := range row {
							row[c] += src[c*n+k-t.lo]
						}
					}
				}
			}
		}
	})
	return nil
}

// attnStripes returns the number of stripes to cut each of units
// (batch row, key-value head) pairs into for threads workers, among at most
// blocks: the fewest that keep every thread busy, or as near as
// possible, since each stripe costs an accumulator of dK and dV and a pass
// to sum it.
func attnStripes(units, threads, blocks int) int {
	if units == 0 {
		return 1
	}
	best, bestEff := 1, 0.0
	for s := 1; s <= max(1, min(blocks, (4*threads+units-1)/units)); s++ {
		n := units * s
		rounds := (n + threads - 1) / threads
		eff := float64(n) / float64(rounds*threads)
		if eff > bestEff+0.05 {
			best, bestEff = s, eff
		}
		if eff >= 0.95 {
			break
		}
	}
	return best
}

// attnSplit cuts blocks of the given costs into at most n runs of
// consecutive blocks of about equal cost, and returns the runs' bounds:
// run i is blocks [bounds[i], bounds[i+1]). Run k ends at the block
// boundary whose cumulative cost is nearest k/n of the total.
func attnSplit(costs []int, n int) []int {
	cum := make([]int, len(costs)+1)
	for i, c := range costs {
		cum[i+1] = cum[i] + c
	}
	total := cum[len(costs)]
	bounds := []int{0}
	for k := 1; k < n; k++ {
		// The first boundary at or past the target, or the one before it
		// when that is nearer (in units of total/n: n*cum vs k*total).
		b, _ := slices.BinarySearchFunc(cum, k, func(c, k int) int { return cmp.Compare(n*c, k*total) })
		if b > 0 && (b == len(cum) || k*total-n*cum[b-1] < n*cum[b]-k*total) {
			b--
		}
		if b > bounds[len(bounds)-1] && b < len(costs) {
			bounds = append(bounds, b)
		}
	}
	return append(bounds, len(costs))
}

// attnBack is the state of a backward pass.
type attnBack[T Float] struct {
	be     *Backend
	d      *attnDims
	o      *attnOperands[T]
	rows   []attnRow
	delta  []T
	ranges [][2]int // keys [lo, hi) of each query block, [B][blocks]
}

// grads turns the scores s and dp (rows x n, for keys [lo, hi)) of query
// rows into P (in s) and dS (in dp). Row r is query i0 + r%m of query head
// h0 + r/m.
func (bw *attnBack[T]) grads(b, h0, i0, m, lo, hi int, s, dp []T) {
	d, o := bw.d, bw.o
	n := hi - lo
	var segs []int32
	if o.segs != nil {
		segs = o.segs[b*d.tk+lo:][:n]
	}
	brows := bw.rows[b*d.tq+i0:][:m]
	for r := 0; r < len(s)/max(n, 1); r++ {
		row := brows[r%m]
		sr, dr := s[r*n:(r+1)*n], dp[r*n:(r+1)*n]
		if row.empty() {
			attnGradRow(sr, dr, 0, 0, 0, 0, nil, 0)
			continue
		}
		at := (b*d.hq+h0+r/m)*d.tq + i0 + r%m
		var sg []int32
		if row.mask {
			sg = segs
		}
		attnGradRow(sr, dr, max(row.lo, lo)-lo, min(row.hi, hi)-lo, o.lse[at], bw.delta[at], sg, row.seg)
	}
}

// attnAcc accumulates dK and dV of one key-value head for keys [k0, k1),
// transposed (D x (k1-k0)): the products dV^T += dO^T P and dK^T += dS^T Q
// then pack the Bq x n matrices P and dS by rows, and the small dO and Q by
// columns, which the serial GEMM does faster than the other way round.
type attnAcc[T Float] struct {
	dk, dv []T // nil when not wanted
	k0, k1 int
}

// newAcc returns zeroed accumulators in buf for keys [k0, k1).
func (bw *attnBack[T]) newAcc(buf []T, k0, k1 int) *attnAcc[T] {
	n := bw.d.d * (k1 - k0)
	acc := &attnAcc[T]{k0: k0, k1: k1}
	if bw.o.dk != nil {
		acc.dk = buf[:n]
		clear(acc.dk)
	}
	if bw.o.dv != nil {
		acc.dv = buf[len(acc.dk):][:n]
		clear(acc.dv)
	}
	return acc
}

// block works on query block qb (the G query heads of key-value head h in
// batch row b, queries [qb*bq, (qb+1)*bq)) and keys [c0, c1), attnKc keys at
// a time: with dq it sets dQ (zero where c0 >= c1; the keys must then be all
// that the block attends), and with acc it adds to acc's dK and dV, whose
// keys must cover [c0, c1).
func (bw *attnBack[T]) block(b, h, qb, c0, c1 int, buf []T, dq bool, acc *attnAcc[T]) error {
	d, o := bw.d, bw.o
	i0 := qb * d.bq
	i1 := min(i0+d.bq, d.tq)
	dq = dq && o.dq != nil
	if c0 >= c1 {
		if dq {
			attnZero(d, o.dq, b, h, i0, i1)
		}
		return nil
	}
	m := i1 - i0
	rs, dd := d.g*m, d.d
	ldk := d.hkv * dd
	nc := min(c1-c0, attnKc)
	qg, dog, dqg := buf[:rs*dd], buf[rs*dd:2*rs*dd], buf[2*rs*dd:3*rs*dd]
	s, dp := buf[3*rs*dd:][:rs*nc], buf[3*rs*dd+rs*nc:][:rs*nc]
	attnGather(d, qg, o.q, b, h, i0, i1)
	attnGather(d, dog, o.dout, b, h, i0, i1)
	for k0 := c0; k0 < c1; k0 += nc {
		k1 := min(k0+nc, c1)
		w := k1 - k0
		s, dp := s[:rs*w], dp[:rs*w]
		kc, vc := attnKV(d, o.k, b, h, k0), attnKV(d, o.v, b, h, k0)
		if err := gemmSerial(bw.be, false, true, rs, w, dd, T(d.scale), qg, dd, kc, ldk, 0, s, w); err != nil {
			return err
		}
		if err := gemmSerial(bw.be, false, true, rs, w, dd, 1, dog, dd, vc, ldk, 0, dp, w); err != nil {
			return err
		}
		bw.grads(b, h*d.g, i0, m, k0, k1, s, dp)
		if dq {
			beta := T(1)
			if k0 == c0 {
				beta = 0
			}
			if err := gemmNN(bw.be, d.direct, rs, dd, w, T(d.scale), dp, w, kc, ldk, beta, dqg, dd); err != nil {
				return err
			}
		}
		if acc == nil {
			continue
		}
		na, off := acc.k1-acc.k0, k0-acc.k0
		if acc.dv != nil {
			if err := gemmTN(bw.be, dd, w, rs, 1, dog, dd, s, w, 1, acc.dv[off:], na); err != nil {
				return err
			}
		}
		if acc.dk != nil {
			if err := gemmTN(bw.be, dd, w, rs, T(d.scale), qg, dd, dp, w, 1, acc.dk[off:], na); err != nil {
				return err
			}
		}
	}
	if dq {
		attnScatter(d, o.dq, dqg, nil, b, h, i0, i1)
	}
	return nil
}

// attnDirectCols returns the widest product, in columns of C, for which the
// serial GEMM's micro-kernel reads A where it lies instead of packing it
// (two of its panels: gemm's directPanels), or 0 when the kernel has no such
// path. P*V and dS*K have D columns; cut into pieces of this width they skip
// packing the Bq x n matrices P and dS, which otherwise costs about as much
// as the products themselves. Only speed depends on it.
func attnDirectCols(be *Backend) int {
	var name string
	var mr, nr int
	if _, err := fmt.Sscanf(be.serial.Kernel(), "%s %dx%d", &name, &mr, &nr); err != nil || name == "go" || nr <= 0 {
		return 0
	}
	return 2 * nr
}

// gemmNN computes C = alpha * A * B + beta*C (A m x k, B k x n, C m x n) with
// gemmSerial, in pieces of at most cols columns of C when cols > 0.
func gemmNN[T Float](be *Backend, cols, m, n, k int, alpha T, a []T, lda int, bm []T, ldb int, beta T, c []T, ldc int) error {
	if cols <= 0 || cols >= n {
		return gemmSerial(be, false, false, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
	}
	for j := 0; j < n; j += cols {
		if err := gemmSerial(be, false, false, m, min(cols, n-j), k, alpha, a, lda, bm[j:], ldb, beta, c[j:], ldc); err != nil {
			return err
		}
	}
	return nil
}

// gemmTN computes C = alpha * A^T * B + beta*C, with A k x m, B k x n
// and C m x n (row-major with leading dimensions). float32 runs gemmSerial;
// float64 runs a loop here, since gemmSerial's float64 loop reads A at
// i*lda+p before it checks transA: past the end of a transposed A whenever
// (m-1)*lda + k exceeds its length.
func gemmTN[T Float](be *Backend, m, n, k int, alpha T, a []T, lda int, bm []T, ldb int, beta T, c []T, ldc int) error {
	if _, ok := any(a).([]float32); ok {
		return gemmSerial(be, true, false, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k > 0 && (len(a) < (k-1)*lda+m || len(bm) < (k-1)*ldb+n) || len(c) < (m-1)*ldc+n {
		return fmt.Errorf("attention: gemmTN %dx%dx%d: operands too short", m, n, k)
	}
	for i := 0; i < m; i++ {
		cr := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(cr)
		} else if beta != 1 {
			for j := range cr {
				cr[j] *= beta
			}
		}
	}
	for p := 0; p < k; p++ {
		br := bm[p*ldb : p*ldb+n]
		for i, av := range a[p*lda : p*lda+m] {
			if av == 0 {
				continue
			}
			av *= alpha
			cr := c[i*ldc : i*ldc+n]
			for j, bv := range br {
				cr[j] += av * bv
			}
		}
	}
	return nil
}
