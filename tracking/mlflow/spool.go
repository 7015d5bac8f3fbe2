package mlflow

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/whet-ai/whet/tracking"
)

// The files of a spool directory.
const (
	stateFile   = "state.json"    // the run: server, experiment, run id
	journalFile = "journal.jsonl" // one record a line, appended and fsync'd
	ackFile     = "acked.jsonl"   // one line per delivered record group, appended and fsync'd
	lockFile    = "lock"          // held by the process delivering the spool
	spoolFormat = 1
)

// spoolState is what a spool knows of its run. It holds no credentials.
type spoolState struct {
	Version      int    `json:"version"`
	SpoolID      string `json:"spool_id"`
	TrackingURI  string `json:"tracking_uri"`
	Experiment   string `json:"experiment,omitempty"`
	ExperimentID string `json:"experiment_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	RunName      string `json:"run_name,omitempty"`
	ArtifactURI  string `json:"artifact_uri,omitempty"`
	StartTime    int64  `json:"start_time"`
	User         string `json:"user,omitempty"`
	// Tags are set on the run when it is created.
	Tags []KV `json:"tags,omitempty"`
	// Resume: RunID was given (MLFLOW_RUN_ID) rather than created.
	Resume bool `json:"resume,omitempty"`
	// CreateSent: a runs/create went out, so the run may exist although
	// RunID is empty; it is looked for by its whet.spool tag first.
	CreateSent bool `json:"create_sent,omitempty"`
	// Ready: the run exists on the server and is RUNNING.
	Ready bool `json:"ready,omitempty"`
}

// Record kinds.
const (
	kindMetrics  = "metrics"
	kindParams   = "params"
	kindTags     = "tags"
	kindArtifact = "artifact"
	kindFinish   = "finish"
)

// record is one line of the journal: items of one kind that fit one
// request.
type record struct {
	Seq     int64        `json:"seq"`
	Kind    string       `json:"kind"`
	Metrics []WireMetric `json:"metrics,omitempty"`
	Params  []KV         `json:"params,omitempty"`
	Tags    []KV         `json:"tags,omitempty"`
	Local   string       `json:"local,omitempty"` // artifact: the local file or directory
	Path    string       `json:"path,omitempty"`  // artifact: the directory inside the run's artifacts
	Status  string       `json:"status,omitempty"`
	EndTime int64        `json:"end_time,omitempty"`

	end  int64 // journal offset just after the record's line
	size int   // bound on the record's bytes in a request body
}

func (r *record) counts() tracking.Counts {
	c := tracking.Counts{Metrics: int64(len(r.Metrics)), Params: int64(len(r.Params)), Tags: int64(len(r.Tags))}
	if r.Kind == kindArtifact {
		c.Artifacts = 1
	}
	return c
}

// ackLine is one line of acked.jsonl: everything up to journal offset End
// (record Seq) is settled; the counts are cumulative.
type ackLine struct {
	Seq       int64           `json:"seq"`
	End       int64           `json:"end"`
	Delivered tracking.Counts `json:"delivered"`
	Rejected  tracking.Counts `json:"rejected"`
	Reason    string          `json:"reason,omitempty"`   // why the last group was rejected
	Finished  bool            `json:"finished,omitempty"` // the run's end was delivered
}

// spool is a spool directory, locked by this process.
type spool struct {
	dir     string
	journal *os.File // O_APPEND for writing, ReadAt for reading
	acks    *os.File
}

func newSpoolID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mlflow spool id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// createSpool makes parent/<id> with its state, an empty journal and
// acknowledgement file, locked.
func createSpool(parent string, st *spoolState) (*spool, error) {
	dir := filepath.Join(parent, st.SpoolID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mlflow spool: %w", err)
	}
	s := &spool{dir: dir}
	if err := s.lock(); err != nil {
		return nil, err
	}
	if err := s.writeState(st); err != nil {
		s.close(true)
		return nil, err
	}
	if err := s.openFiles(); err != nil {
		s.close(true)
		return nil, err
	}
	return s, nil
}

// recovered is what openSpool finds in an existing spool.
type recovered struct {
	state   spoolState
	ack     ackLine
	size    int64           // journal bytes, whole lines only
	nextSeq int64           // the seq the next record gets
	pending tracking.Counts // items after the last acknowledgement
	finish  bool            // the journal holds the run's end (or delivered it)
}

// openSpool locks an existing spool directory and reads where delivery
// stopped. A line cut short by a crash at the journal's end is removed.
func openSpool(dir string) (*spool, *recovered, error) {
	s := &spool{dir: dir}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		return nil, nil, fmt.Errorf("mlflow spool %s: not a spool directory: %w", dir, err)
	}
	if err := s.lock(); err != nil {
		return nil, nil, err
	}
	rec, err := s.recover()
	if err != nil {
		s.close(false)
		return nil, nil, err
	}
	return s, rec, nil
}

func (s *spool) recover() (*recovered, error) {
	rec := &recovered{}
	data, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("mlflow spool: %w", err)
	}
	if err := json.Unmarshal(data, &rec.state); err != nil {
		return nil, fmt.Errorf("mlflow spool %s: %w", filepath.Join(s.dir, stateFile), err)
	}
	if rec.state.Version != spoolFormat {
		return nil, fmt.Errorf("mlflow spool %s: format %d, want %d", s.dir, rec.state.Version, spoolFormat)
	}
	if data, err := os.ReadFile(filepath.Join(s.dir, ackFile)); err == nil {
		// The last whole line wins; a torn last line is ignored.
		for _, line := range bytes.Split(data, []byte("\n")) {
			var a ackLine
			if len(bytes.TrimSpace(line)) > 0 && json.Unmarshal(line, &a) == nil {
				rec.ack = a
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mlflow spool: %w", err)
	}
	jdata, err := os.ReadFile(filepath.Join(s.dir, journalFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mlflow spool: %w", err)
	}
	whole := int64(bytes.LastIndexByte(jdata, '\n') + 1)
	if whole < int64(len(jdata)) {
		if err := os.Truncate(filepath.Join(s.dir, journalFile), whole); err != nil {
			return nil, fmt.Errorf("mlflow spool: drop a torn journal line: %w", err)
		}
	}
	rec.size = whole
	rec.finish = rec.ack.Finished
	if rec.ack.End > whole { // compaction truncated the journal before rewriting the acks
		rec.ack.End = whole
	}
	rec.nextSeq = rec.ack.Seq + 1
	for off := int64(0); off < whole; {
		n := bytes.IndexByte(jdata[off:whole], '\n')
		line := jdata[off : off+int64(n)]
		off += int64(n) + 1
		var r record
		if json.Unmarshal(line, &r) != nil {
			continue
		}
		rec.nextSeq = max(rec.nextSeq, r.Seq+1)
		rec.finish = rec.finish || r.Kind == kindFinish
		if off > rec.ack.End {
			rec.pending = rec.pending.Add(r.counts())
		}
	}
	if err := s.openFiles(); err != nil {
		return nil, err
	}
	return rec, nil
}

func (s *spool) openFiles() error {
	var err error
	if s.journal, err = os.OpenFile(filepath.Join(s.dir, journalFile), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	if s.acks, err = os.OpenFile(filepath.Join(s.dir, ackFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	return nil
}

// lock takes the spool's lock file, or fails naming the process holding
// it. A lock left by a process of this host that is gone is taken over.
func (s *spool) lock() error {
	p := filepath.Join(s.dir, lockFile)
	host, _ := os.Hostname()
	me := fmt.Sprintf("%d %s\n", os.Getpid(), host)
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_, werr := f.WriteString(me)
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(p)
				return fmt.Errorf("mlflow spool: write lock %s: %w", p, errors.Join(werr, cerr))
			}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mlflow spool: lock %s: %w", p, err)
		}
		data, _ := os.ReadFile(p)
		pidText, lockHost, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		pid, perr := strconv.Atoi(pidText)
		if perr == nil && lockHost == host && !alive(pid) {
			os.Remove(p)
			continue
		}
		return fmt.Errorf("mlflow spool %s is in use by process %s on %s (remove %s if that process is gone)", s.dir, pidText, lockHost, p)
	}
	return fmt.Errorf("mlflow spool: could not lock %s", p)
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// writeState replaces state.json (write, fsync, rename).
func (s *spool) writeState(st *spoolState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("mlflow spool state: %w", err)
	}
	return writeSynced(filepath.Join(s.dir, stateFile), append(data, '\n'))
}

func writeSynced(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(name)
		return fmt.Errorf("mlflow spool: write %s: %w", p, err)
	}
	if err := os.Rename(name, p); err != nil {
		os.Remove(name)
		return fmt.Errorf("mlflow spool: %w", err)
	}
	return nil
}

// append writes whole lines at the journal's end and fsyncs them. On
// failure it cuts the journal back to size, so no torn line stays.
func (s *spool) append(data []byte, size int64) error {
	if _, err := s.journal.Write(data); err != nil {
		s.journal.Truncate(size)
		return fmt.Errorf("mlflow spool: write journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		s.journal.Truncate(size)
		return fmt.Errorf("mlflow spool: sync journal: %w", err)
	}
	return nil
}

// readAt reads journal bytes.
func (s *spool) readAt(p []byte, off int64) (int, error) {
	n, err := s.journal.ReadAt(p, off)
	if errors.Is(err, io.EOF) && n == len(p) {
		err = nil
	}
	return n, err
}

// writeAck appends an acknowledgement line and fsyncs it.
func (s *spool) writeAck(a ackLine) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	if _, err := s.acks.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("mlflow spool: write acks: %w", err)
	}
	if err := s.acks.Sync(); err != nil {
		return fmt.Errorf("mlflow spool: sync acks: %w", err)
	}
	return nil
}

// compact empties a journal whose every record is acknowledged, keeping
// the last acknowledgement (with End 0) so that sequence numbers and
// counts carry on. The journal is cut first: a crash between the two
// steps leaves an acknowledgement past the journal's end, which recover
// reads as "all delivered".
func (s *spool) compact(a ackLine) error {
	if err := s.journal.Truncate(0); err != nil {
		return fmt.Errorf("mlflow spool: compact journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("mlflow spool: compact journal: %w", err)
	}
	a.End = 0
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	if err := writeSynced(filepath.Join(s.dir, ackFile), append(data, '\n')); err != nil {
		return err
	}
	s.acks.Close()
	s.acks, err = os.OpenFile(filepath.Join(s.dir, ackFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("mlflow spool: %w", err)
	}
	return nil
}

// close closes the files and releases the lock; remove deletes the
// whole directory.
func (s *spool) close(remove bool) error {
	var errs []error
	for _, f := range []*os.File{s.journal, s.acks} {
		if f != nil {
			if err := f.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.journal, s.acks = nil, nil
	if remove {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
	} else if err := os.Remove(filepath.Join(s.dir, lockFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mlflow spool %s: %w", s.dir, err)
	}
	return nil
}
