package data

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// StateVersion is the version of State's layout.
const StateVersion = 1

// State is an iterator's position, saved with a checkpoint to resume
// training exactly where it stopped: the restored iterator returns the
// same batches the saved one would have returned next. It is plain JSON.
type State struct {
	// Version is StateVersion.
	Version int `json:"version"`
	// Fingerprint identifies the dataset (files, their sizes, the
	// configuration but the number of epochs, the tokenizer); a state is
	// refused by a dataset with another.
	Fingerprint string `json:"fingerprint"`
	// Position is where the stream of examples restarts.
	Position Position `json:"position"`
	// SkipBatches is the number of batches to skip after restarting (the
	// batches already returned from a length-bucketing window).
	SkipBatches int `json:"skip_batches,omitempty"`
	// Batches is the number of batches returned so far.
	Batches int64 `json:"batches"`
	// Stats are the counts at Position.
	Stats Stats `json:"stats"`
}

// Iterator returns a dataset's batches in order. It is not safe for
// concurrent use.
type Iterator struct {
	d       *Dataset
	st      *stream
	eval    bool
	print   string
	pending *item
	err     error

	committed Position // where the stream restarts for the next batch
	stats     Stats    // counts up to committed
	batches   int64

	// Length bucketing: the window's batches, how many were returned,
	// and where (and with which counts) the window started.
	win        []*Batch
	winNext    int
	winStart   Position
	winStartSt Stats
}

// Train returns an iterator over the training batches, from the start
// or, when st is not nil, from a saved State.
func (d *Dataset) Train(st *State) (*Iterator, error) {
	var keep func(string, int64) bool
	if d.s.EvalFraction > 0 {
		keep = func(f string, i int64) bool { return !d.heldOut(f, i) }
	}
	it := &Iterator{d: d, print: d.print}
	return it.start(d.files, keep, d.s.epochs, d.s.Shuffle, st)
}

// ErrNoEval is returned by Eval when the configuration has neither
// eval_files nor eval_fraction.
var ErrNoEval = errors.New("data: no evaluation data (set eval_files or eval_fraction)")

// Eval returns an iterator over the evaluation batches: the eval files,
// or the records that eval_fraction holds out, in order, once. They are
// batched as the training data is (packing, batch size).
func (d *Dataset) Eval() (*Iterator, error) {
	files := d.evalFiles
	var keep func(string, int64) bool
	switch {
	case len(files) > 0:
	case d.s.EvalFraction > 0:
		files = d.files
		keep = d.heldOut
	default:
		return nil, ErrNoEval
	}
	it := &Iterator{d: d, eval: true, print: d.print + "-eval"}
	return it.start(files, keep, 1, false, nil)
}

func (it *Iterator) start(files []string, keep func(string, int64) bool, epochs int, shuffle bool, st *State) (*Iterator, error) {
	at := fileStart(0, 0)
	it.committed = at
	if st != nil {
		if st.Version != StateVersion {
			return nil, fmt.Errorf("data: state version %d; this whet reads version %d", st.Version, StateVersion)
		}
		if st.Fingerprint != it.print {
			return nil, fmt.Errorf("data: the state was saved for another dataset or configuration (fingerprint %s, this one's is %s): files, their sizes, format, sequence_len, batching, shuffling and the tokenizer must be the same", st.Fingerprint, it.print)
		}
		if st.Position.Index < 0 || st.Position.Piece < 0 || st.Position.File < 0 || st.Position.File >= max(len(files), 1) || st.Position.Epoch < 0 || st.SkipBatches < 0 {
			return nil, fmt.Errorf("data: the state's position is out of range")
		}
		at = st.Position
		it.committed, it.stats = st.Position, st.Stats
	}
	it.st = newStream(it.d, files, keep, epochs, shuffle, at)
	if st != nil {
		for range st.SkipBatches {
			if _, err := it.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("data: the state skips %d batches past the end", st.SkipBatches)
				}
				it.Close()
				return nil, err
			}
		}
		it.batches = st.Batches
	}
	return it, nil
}

// Close releases the open file. The iterator cannot be used afterwards.
func (it *Iterator) Close() error {
	it.st.close()
	it.err = errors.New("data: iterator closed")
	return nil
}

// State returns the iterator's position: restoring it with Train gives an
// iterator whose next batch is this one's next batch.
func (it *Iterator) State() State {
	if it.winNext < len(it.win) {
		return State{Version: StateVersion, Fingerprint: it.print, Position: it.winStart, SkipBatches: it.winNext, Batches: it.batches, Stats: it.winStartSt}
	}
	return State{Version: StateVersion, Fingerprint: it.print, Position: it.committed, Batches: it.batches, Stats: it.stats}
}

// Stats returns the counts so far.
func (it *Iterator) Stats() Stats { return it.stats }

// Epoch returns the epoch of the next batch.
func (it *Iterator) Epoch() int { return it.committed.Epoch }

func (it *Iterator) pull() (item, error) {
	if it.pending != nil {
		x := *it.pending
		it.pending = nil
		return x, nil
	}
	return it.st.next()
}

// Next returns the next batch, or io.EOF after the last one. A batch never
// spans two epochs, so the last batch of an epoch may have fewer rows.
// Errors are those of reading the data (a malformed record names its file
// and line); the iterator returns the same error from then on.
func (it *Iterator) Next() (*Batch, error) {
	if it.err != nil {
		return nil, it.err
	}
	var b *Batch
	var err error
	if it.d.s.LengthBucketing {
		b, err = it.nextBucketed()
	} else {
		b, err = it.nextBatch()
	}
	if err != nil {
		it.err = err
		return nil, err
	}
	it.batches++
	return b, nil
}

// gather pulls the examples of a batch: those that fill up to rows rows
// when packing, else rows examples. It returns them, their epoch, the
// position after them and their counts; no examples means the end of the
// data. It stops at the end of an epoch.
func (it *Iterator) gather(rows int, pack bool) (exs []Example, epoch int, next Position, delta Stats, err error) {
	T := it.d.s.SequenceLen
	n, used := 0, T
	next = it.committed
	for {
		x, err := it.pull()
		if errors.Is(err, io.EOF) {
			return exs, epoch, next, delta, nil
		}
		if err != nil {
			return nil, 0, next, delta, err
		}
		if x.end {
			delta.add(x.delta)
			next = x.next
			if len(exs) > 0 {
				return exs, epoch, next, delta, nil
			}
			continue
		}
		if pack {
			if l := len(x.ex.InputIDs); used+l > T {
				if n == rows {
					it.pending = &x
					return exs, epoch, next, delta, nil
				}
				n++
				used = 0
			}
			used += len(x.ex.InputIDs)
		}
		if len(exs) == 0 {
			epoch = x.epoch
		}
		exs = append(exs, x.ex)
		delta.add(x.delta)
		next = x.next
		if !pack && len(exs) == rows {
			return exs, epoch, next, delta, nil
		}
	}
}

func (it *Iterator) nextBatch() (*Batch, error) {
	exs, epoch, next, delta, err := it.gather(it.d.s.batchSize, it.d.s.Packing)
	if err != nil {
		return nil, err
	}
	it.committed = next
	it.stats.add(delta)
	if len(exs) == 0 {
		return nil, io.EOF
	}
	pad := int32(it.d.m.Pad)
	var b *Batch
	if it.d.s.Packing {
		b = packRows(exs, it.d.s.SequenceLen, pad)
	} else {
		b = padRows(exs, pad)
	}
	b.Epoch = epoch
	return b, nil
}

func (it *Iterator) nextBucketed() (*Batch, error) {
	if it.winNext == len(it.win) {
		start, startSt := it.committed, it.stats
		B := it.d.s.batchSize
		exs, epoch, next, delta, err := it.gather(B*it.d.s.bucket, false)
		if err != nil {
			return nil, err
		}
		it.committed = next
		it.stats.add(delta)
		if len(exs) == 0 {
			return nil, io.EOF
		}
		idx := make([]int, len(exs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return len(exs[idx[a]].InputIDs) < len(exs[idx[b]].InputIDs) })
		var batches []*Batch
		for lo := 0; lo < len(idx); lo += B {
			group := make([]Example, 0, B)
			for _, i := range idx[lo:min(lo+B, len(idx))] {
				group = append(group, exs[i])
			}
			b := padRows(group, int32(it.d.m.Pad))
			b.Epoch = epoch
			batches = append(batches, b)
		}
		if it.st.shuffle {
			p := permutation(len(batches), mix(it.d.s.Seed, keyBuckets, uint64(start.Epoch), uint64(start.File),
				uint64(start.Window.Record), uint64(start.Index), uint64(start.Piece)))
			shuffled := make([]*Batch, len(batches))
			for i, j := range p {
				shuffled[i] = batches[j]
			}
			batches = shuffled
		}
		it.win, it.winNext, it.winStart, it.winStartSt = batches, 0, start, startSt
	}
	b := it.win[it.winNext]
	it.win[it.winNext] = nil
	it.winNext++
	if it.winNext == len(it.win) {
		it.win, it.winNext = nil, 0
	}
	return b, nil
}
