package data

// Batch is B rows of T tokens, each field a flat row-major [B][T] slice.
//
// A row holds one example (without packing) or several (with packing).
// Segments is the row's document mask, which the attention op consumes: a
// token attends only to earlier tokens of its own segment. Documents are
// numbered from 0 within each row; padding is -1. PositionIDs restart at 0
// for each document; padding has position 0. Padding tokens are Model.Pad
// with label IgnoreIndex.
type Batch struct {
	// B is the number of rows, T the tokens per row.
	B, T int
	// InputIDs are the tokens.
	InputIDs []int32
	// Labels are the targets, aligned with InputIDs as in Hugging Face
	// (see Example.Labels); IgnoreIndex where nothing is trained.
	Labels []int32
	// PositionIDs are each token's position in its document.
	PositionIDs []int32
	// Segments are each token's document within its row, -1 for padding.
	Segments []int32
	// TrainedTokens is the number of labels that are not IgnoreIndex: the
	// number of terms in the batch's loss.
	TrainedTokens int
	// Sources are the records of the batch's documents, row by row and in
	// order within a row.
	Sources []Pos
	// Epoch is the epoch the batch belongs to, from 0.
	Epoch int
}

// newBatch returns a batch of b rows of t padding tokens.
func newBatch(b, t int, pad int32) *Batch {
	n := b * t
	bt := &Batch{B: b, T: t, InputIDs: make([]int32, n), Labels: make([]int32, n), PositionIDs: make([]int32, n), Segments: make([]int32, n)}
	for i := range n {
		bt.InputIDs[i] = pad
		bt.Labels[i] = IgnoreIndex
		bt.Segments[i] = -1
	}
	return bt
}

// put writes ex into row r from column c as segment seg.
func (b *Batch) put(r, c int, seg int32, ex *Example) {
	o := r*b.T + c
	copy(b.InputIDs[o:], ex.InputIDs)
	copy(b.Labels[o:], ex.Labels)
	for i := range ex.InputIDs {
		b.PositionIDs[o+i] = int32(i)
		b.Segments[o+i] = seg
		if ex.Labels[i] != IgnoreIndex {
			b.TrainedTokens++
		}
	}
	b.Sources = append(b.Sources, ex.Source)
}

// Row returns the slices of row r.
func (b *Batch) Row(r int) (inputIDs, labels, positionIDs, segments []int32) {
	s := b.T * r
	e := s + b.T
	return b.InputIDs[s:e], b.Labels[s:e], b.PositionIDs[s:e], b.Segments[s:e]
}

// AttentionMask returns the Hugging Face attention mask: 1 for a real
// token, 0 for padding.
func (b *Batch) AttentionMask() []int32 {
	m := make([]int32, len(b.Segments))
	for i, s := range b.Segments {
		if s >= 0 {
			m[i] = 1
		}
	}
	return m
}

// packRows packs examples into rows of t tokens, in order, each into the
// current row if it fits and else into a new one ("next fit", which keeps
// the order and so the batches a deterministic function of the example
// stream). Every example must be at most t tokens long.
func packRows(exs []Example, t int, pad int32) *Batch {
	rows := [][]int{}
	used := t
	for i := range exs {
		n := len(exs[i].InputIDs)
		if used+n > t {
			rows = append(rows, nil)
			used = 0
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], i)
		used += n
	}
	b := newBatch(len(rows), t, pad)
	for r, row := range rows {
		c := 0
		for seg, i := range row {
			b.put(r, c, int32(seg), &exs[i])
			c += len(exs[i].InputIDs)
		}
	}
	return b
}

// padRows puts each example in its own row, padded to the longest.
func padRows(exs []Example, pad int32) *Batch {
	t := 1
	for i := range exs {
		t = max(t, len(exs[i].InputIDs))
	}
	b := newBatch(len(exs), t, pad)
	for r := range exs {
		b.put(r, 0, 0, &exs[r])
	}
	return b
}
