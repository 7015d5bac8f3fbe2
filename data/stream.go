package data

import (
	"errors"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Position is a place in the stream of examples: everything the stream
// needs to produce the same examples from there on without reading what
// comes before.
//
// In each epoch the files are read in an order drawn from the seed; each
// file is read in windows of consecutive records (Config.ShuffleWindow),
// and the records of a window are put in an order drawn from the seed,
// the epoch, the file's name and the window's first record.
type Position struct {
	// Epoch is the pass over the data, from 0.
	Epoch int `json:"epoch"`
	// File is the index of the file in the epoch's order.
	File int `json:"file"`
	// Window is where the window starts in the file.
	Window Cursor `json:"window"`
	// Index is the record's place in the window's (shuffled) order; it
	// may equal the window's length, meaning the window is done.
	Index int `json:"index"`
	// Piece is the example within the record (a record split into
	// several documents has several).
	Piece int `json:"piece"`
}

// fileStart is the position of the start of a file.
func fileStart(epoch, file int) Position {
	return Position{Epoch: epoch, File: file, Window: Cursor{Line: 1}}
}

// item is one example from the stream, or the end of an epoch.
type item struct {
	ex    Example
	epoch int
	// next is the position just after this example (for an end item, the
	// start of the next epoch).
	next Position
	// delta counts the records read since the previous item, this
	// example included.
	delta Stats
	end   bool
}

// result is what became of one record.
type result struct {
	exs     []Example
	out     outcome
	err     error
	heldOut bool
}

// stream produces the examples of a list of files, epoch after epoch,
// tokenizing each window's records in parallel and in a deterministic
// order.
type stream struct {
	ds      *Dataset
	files   []string
	keep    func(file string, index int64) bool // nil keeps every record
	epochs  int
	shuffle bool
	workers int

	pos    Position // the next record (and piece) to produce
	order  []int    // the epoch's file order
	rr     recordReader
	rrCur  Cursor // where rr's next record starts
	rrEOF  bool   // rr has no more records
	loaded bool   // window holds the window at pos
	window []rawRecord
	perm   []int
	skip   int // pieces of the record at pos to skip (resuming mid-record)

	queue   []item
	qi      int
	delta   Stats
	pendErr error // returned once the queue is drained
	err     error
}

func newStream(ds *Dataset, files []string, keep func(string, int64) bool, epochs int, shuffle bool, at Position) *stream {
	s := &stream{ds: ds, files: files, keep: keep, epochs: epochs, shuffle: shuffle, workers: ds.workers()}
	s.pos = at
	s.skip = at.Piece
	s.order = s.fileOrder(at.Epoch)
	return s
}

// fileOrder is the order of the files in an epoch.
func (s *stream) fileOrder(epoch int) []int {
	if !s.shuffle {
		p := make([]int, len(s.files))
		for i := range p {
			p[i] = i
		}
		return p
	}
	return permutation(len(s.files), mix(s.ds.s.Seed, keyFiles, uint64(epoch)))
}

func (s *stream) close() {
	if s.rr != nil {
		s.rr.Close()
		s.rr = nil
	}
}

// next returns the next item, or io.EOF after the last epoch.
func (s *stream) next() (item, error) {
	for {
		if s.qi < len(s.queue) {
			x := s.queue[s.qi]
			s.queue[s.qi] = item{}
			s.qi++
			return x, nil
		}
		s.queue, s.qi = s.queue[:0], 0
		if s.pendErr != nil {
			s.err, s.pendErr = s.pendErr, nil
		}
		if s.err != nil {
			return item{}, s.err
		}
		if s.pos.Epoch >= s.epochs || len(s.files) == 0 {
			return item{}, io.EOF
		}
		if !s.loaded {
			if err := s.load(); err != nil {
				s.err = err
				return item{}, err
			}
		}
		if s.pos.Index < len(s.window) {
			s.encodeSome()
			continue
		}
		// The window is done: on to the next window, file or epoch.
		s.loaded = false
		if !s.rrEOF {
			s.pos = Position{Epoch: s.pos.Epoch, File: s.pos.File, Window: s.rrCur}
			continue
		}
		s.close()
		if s.pos.File+1 < len(s.files) {
			s.pos = fileStart(s.pos.Epoch, s.pos.File+1)
			continue
		}
		end := item{end: true, epoch: s.pos.Epoch, next: fileStart(s.pos.Epoch+1, 0), delta: s.delta}
		s.delta = Stats{}
		s.pos = end.next
		s.order = s.fileOrder(s.pos.Epoch)
		return end, nil
	}
}

// load reads the window at s.pos.
func (s *stream) load() error {
	if s.rr == nil {
		path := s.files[s.order[s.pos.File]]
		rr, err := openReader(path, s.pos.Window, s.ds.s.textUnit, s.ds.s.fields["text"])
		if err != nil {
			return err
		}
		s.rr, s.rrCur, s.rrEOF = rr, s.pos.Window, false
	}
	clear(s.window)
	s.window = s.window[:0]
	bytes := 0
	for len(s.window) < s.ds.s.window && bytes < maxWindowBytes {
		rec, err := s.rr.next()
		if errors.Is(err, io.EOF) {
			s.rrEOF = true
			break
		}
		if err != nil {
			return err
		}
		s.window = append(s.window, rec)
		s.rrCur = rec.next
		bytes += rec.size
	}
	if s.shuffle {
		name := filepath.Base(s.files[s.order[s.pos.File]])
		s.perm = permutation(len(s.window), mix(s.ds.s.Seed, keyWindow, uint64(s.pos.Epoch), hashString(name), uint64(s.pos.Window.Record)))
	} else {
		s.perm = s.perm[:0]
		for i := range s.window {
			s.perm = append(s.perm, i)
		}
	}
	s.loaded = true
	return nil
}

// encodeSome tokenizes the next records of the window in parallel and
// queues their examples in order.
func (s *stream) encodeSome() {
	lo := s.pos.Index
	hi := min(len(s.window), lo+32*s.workers)
	res := make([]result, hi-lo)
	parallelFor(hi-lo, s.workers, func(i int) {
		raw := &s.window[s.perm[lo+i]]
		res[i] = s.ds.process(raw, s.keep)
		*raw = rawRecord{}
	})
	for i := range res {
		r := &res[i]
		idx := lo + i
		resumed := i == 0 && s.skip > 0
		switch {
		case r.heldOut:
			s.delta.HeldOut++
		case r.err != nil:
			if !s.ds.s.SkipInvalid {
				s.pendErr = r.err
				s.pos.Index = idx
				return
			}
			s.delta.Skipped++
		default:
			if !resumed {
				s.delta.Records++
				s.delta.addOutcome(r.out)
			}
			for k := range r.exs {
				if resumed && k < s.skip {
					continue
				}
				ex := r.exs[k]
				next := Position{Epoch: s.pos.Epoch, File: s.pos.File, Window: s.pos.Window, Index: idx, Piece: k + 1}
				if k == len(r.exs)-1 {
					next.Index, next.Piece = idx+1, 0
				}
				s.delta.Examples++
				s.delta.Tokens += int64(len(ex.InputIDs))
				s.delta.TrainedTokens += int64(ex.Trained())
				s.queue = append(s.queue, item{ex: ex, epoch: s.pos.Epoch, next: next, delta: s.delta})
				s.delta = Stats{}
			}
		}
	}
	s.skip = 0
	s.pos.Index = hi
}

// parallelFor calls f(i) for every i in [0, n) on up to workers
// goroutines.
func parallelFor(n, workers int, f func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
