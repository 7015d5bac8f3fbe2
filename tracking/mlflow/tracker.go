package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/whet-ai/whet/tracking"
)

// Tag keys whet sets on a run it delivers through a spool.
const (
	// TagSpool holds the id of the spool that created the run, by which a
	// run whose creation went unanswered is found again.
	TagSpool = "whet.spool"
	// TagSourceRun holds the local run a run was copied from by
	// whet mlflow-sync.
	TagSourceRun = "whet.source.run_id"
)

// markerKey is the tag in which a spool records the highest record seq
// of the last metrics batch the server took: "whet.spool.<id>.seq".
func markerKey(spoolID string) string { return TagSpool + "." + spoolID + ".seq" }

// Limits of one journal record and one request's group of records.
const (
	recordMetrics = MaxMetricsPerBatch - 1 // room for the marker tag within 1000 entities
	recordBytes   = 900_000                // bound on a record's share of a request body
	groupBytes    = 950_000                // bound on a request body before it is built
	maxQueued     = 1 << 20                // items waiting for the disk before calls fail
	readChunk     = 4 << 20
)

// entry is one logging call waiting to be written to the journal.
type entry struct {
	kind    string
	metrics []WireMetric
	kvs     []KV
	local   string
	path    string
	status  string
	end     int64
}

// Tracker logs a run to an MLflow tracking server without ever making
// the caller wait for the network: every call appends to an in-memory
// queue and returns; a goroutine writes the queue to the spool's journal
// (one write and fsync per batch of calls) and another delivers the
// journal to the server in requests within MLflow's limits, retrying with
// exponential backoff, and records what the server acknowledged.
//
// Delivery is exactly once. A group of records leaves the journal (is
// acknowledged in acked.jsonl, fsync'd) only after a 2xx, and is never
// sent again once acknowledged. A metrics request also sets the tag
// whet.spool.<spool id>.seq to its last record's number, in the same
// request, after the metrics (MLflow writes a batch's params, then its
// metrics, then its tags); when a metrics request ends without an answer
// (a broken connection, a timeout, a 5xx) or delivery restarts from a
// spool, the run's tag is read first and what it covers is acknowledged
// instead of sent again. Params, tags, artifacts and the final status
// are idempotent in MLflow and are simply sent again.
//
// What is left: a server that stores a batch's metrics and then fails
// before storing its tags (a crash inside one request) makes the retry a
// duplicate; a process killed between writing a call to memory and the
// journal's fsync (milliseconds) loses that call.
type Tracker struct {
	cfg    Config
	cl     *client
	sp     *spool
	marker string
	uri    string // the tracking server

	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	persistWake chan struct{}
	sendWake    chan struct{}
	stopPersist chan struct{}
	stopOnce    sync.Once

	jmu sync.Mutex // journal appends and compaction

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced when delivery moves on
	st         spoolState
	queue      []entry
	queued     int  // items in queue
	writing    bool // the journal writer holds entries taken from queue
	durable    int64
	nextSeq    int64
	ackSeq     int64
	total      tracking.Counts
	delivered  tracking.Counts
	rejected   tracking.Counts
	lastErr    string
	persistErr error
	finished   bool
	closed     bool
	abort      bool // stop waiting for delivery
	// finishAcked: the run's end was delivered (kept across compaction).
	finishAcked bool

	// Sender goroutine only.
	buf       []*record
	readOff   int64
	ackEnd    int64
	uncertain bool
	isolate   int
	sendErr   error
}

// New starts a run on the server of cfg (created, or resumed when
// cfg.RunID or MLFLOW_RUN_ID is set) and returns its tracker. It waits at
// most cfg.StartTimeout for the server: when the server cannot be
// reached, New still succeeds and the run is created in the background;
// when the server refuses (a wrong token, an unknown run id), New fails.
func New(ctx context.Context, cfg Config) (*Tracker, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	base, err := parseServerURI(cfg.TrackingURI)
	if err != nil {
		return nil, err
	}
	id, err := newSpoolID()
	if err != nil {
		return nil, err
	}
	start := cfg.StartTime
	if start.IsZero() {
		start = cfg.Now()
	}
	st := spoolState{
		Version: spoolFormat, SpoolID: id, TrackingURI: base.String(), Experiment: cfg.Experiment,
		ExperimentID: cfg.ExperimentID, StartTime: max(start.UnixMilli(), 0), User: tracking.User(),
	}
	if cfg.RunID != "" {
		st.RunID, st.Resume = cfg.RunID, true
	} else {
		name := cfg.RunName
		if name == "" {
			name = cfg.Tags[tracking.TagRunName]
		}
		if name == "" {
			name = tracking.DefaultRunName(start)
		}
		st.RunName = name
		tags := tracking.RunTags(name, cfg.Tags)
		tags[tracking.TagRunName] = name
		tags[TagSpool] = id
		if u := tags[tracking.TagUser]; u != "" {
			st.User = u
		}
		st.Tags = kvs(tags, tracking.MaxTagValueLength)
	}
	sp, err := createSpool(cfg.SpoolDir, &st)
	if err != nil {
		return nil, err
	}
	t := newTracker(cfg, base, sp, st)
	t.nextSeq = 1
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	err = t.ensureRun(sctx)
	cancel()
	if err != nil {
		if permanent(err) {
			sp.close(true)
			return nil, err
		}
		t.note(err)
		cfg.Logf("mlflow: %v; the run will be created when the server answers (spool %s)", err, sp.dir)
	}
	t.start()
	return t, nil
}

func newTracker(cfg Config, base *url.URL, sp *spool, st spoolState) *Tracker {
	return &Tracker{
		cfg: cfg, cl: newClient(cfg, base), sp: sp, marker: markerKey(st.SpoolID), st: st, uri: base.String(),
		persistWake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1), stopPersist: make(chan struct{}),
		changed: make(chan struct{}),
	}
}

func (t *Tracker) start() {
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(2)
	go t.persistLoop()
	go t.sendLoop()
}

// RunID is the run's id, "" while the server has not created it yet.
func (t *Tracker) RunID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.RunID
}

// SpoolDir is the directory of the run's spool.
func (t *Tracker) SpoolDir() string { return t.sp.dir }

// Name names the sink in errors.
func (t *Tracker) Name() string { return "mlflow " + t.uri }

// runURL is the run's page in the MLflow UI, or the server while the run
// does not exist yet.
func (t *Tracker) runURL() string {
	if t.st.RunID == "" || t.st.ExperimentID == "" {
		return t.st.TrackingURI
	}
	return strings.TrimRight(t.st.TrackingURI, "/") + "/#/experiments/" + t.st.ExperimentID + "/runs/" + t.st.RunID
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// notifyLocked wakes whoever waits for delivery to move on.
func (t *Tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Tracker) note(err error) {
	t.mu.Lock()
	t.lastErr = err.Error()
	t.mu.Unlock()
}

// kvs sorts a map into key-value pairs with sanitized keys and values cut
// to limit. Keys that sanitize alike keep the value of the first in order.
func kvs(m map[string]string, limit int) []KV {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]KV, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		sk := tracking.SanitizeKey(k)
		if seen[sk] {
			continue
		}
		seen[sk] = true
		out = append(out, KV{Key: sk, Value: tracking.TruncateValue(m[k], limit)})
	}
	return out
}

// enqueue queues an entry of n items for the journal.
func (t *Tracker) enqueue(e entry, c tracking.Counts) error {
	n := int(c.Total())
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return errors.New("mlflow: the run is finished")
	}
	if t.queued+n > maxQueued {
		t.rejected = t.rejected.Add(c)
		t.total = t.total.Add(c)
		err := fmt.Errorf("mlflow: %d items wait for the spool's disk; dropped %d (%v)", t.queued, n, t.persistErr)
		t.lastErr = err.Error()
		t.mu.Unlock()
		return err
	}
	t.queue = append(t.queue, e)
	t.queued += n
	t.total = t.total.Add(c)
	perr := t.persistErr
	t.mu.Unlock()
	signal(t.persistWake)
	if perr != nil {
		return fmt.Errorf("mlflow: kept in memory: %w", perr)
	}
	return nil
}

// LogParams queues parameters (keys made valid for MLflow, values cut to
// 6000 characters).
func (t *Tracker) LogParams(params map[string]string) error {
	if len(params) == 0 {
		return nil
	}
	p := kvs(params, tracking.MaxParamValueLength)
	return t.enqueue(entry{kind: kindParams, kvs: p}, tracking.Counts{Params: int64(len(p))})
}

// SetTags queues tags (values cut to 5000 characters).
func (t *Tracker) SetTags(tags map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	kv := kvs(tags, tracking.MaxTagValueLength)
	return t.enqueue(entry{kind: kindTags, kvs: kv}, tracking.Counts{Tags: int64(len(kv))})
}

// LogMetrics queues metric values at one step.
func (t *Tracker) LogMetrics(step int64, metrics map[string]float64, ts time.Time) error {
	if len(metrics) == 0 {
		return nil
	}
	if ts.IsZero() {
		ts = t.cfg.Now()
	}
	ms := Int64(max(ts.UnixMilli(), 0))
	pts := make([]WireMetric, 0, len(metrics))
	for k, v := range metrics {
		pts = append(pts, WireMetric{Key: tracking.SanitizeKey(k), Value: Float(v), Timestamp: ms, Step: Int64(step)})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].Key < pts[j].Key })
	return t.enqueue(entry{kind: kindMetrics, metrics: pts}, tracking.Counts{Metrics: int64(len(pts))})
}

// LogMetricPoints queues metric points, each with its own step and
// timestamp (whet mlflow-sync replays a local run's history with it).
func (t *Tracker) LogMetricPoints(pts []tracking.Metric) error {
	if len(pts) == 0 {
		return nil
	}
	w := make([]WireMetric, len(pts))
	for i, m := range pts {
		w[i] = WireMetric{Key: tracking.SanitizeKey(m.Key), Value: Float(m.Value), Timestamp: Int64(max(m.Timestamp, 0)), Step: Int64(m.Step)}
	}
	return t.enqueue(entry{kind: kindMetrics, metrics: w}, tracking.Counts{Metrics: int64(len(w))})
}

// LogArtifact queues a file or directory for upload. The file must still
// exist when it is delivered; it is not copied into the spool.
func (t *Tracker) LogArtifact(localPath, artifactPath string) error {
	if err := checkArtifactPath(artifactPath); err != nil {
		return err
	}
	abs, err := filepath.Abs(localPath)
	if err != nil {
		return fmt.Errorf("mlflow: artifact %s: %w", localPath, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("mlflow: artifact: %w", err)
	}
	return t.enqueue(entry{kind: kindArtifact, local: abs, path: strings.Trim(artifactPath, "/")}, tracking.Counts{Artifacts: 1})
}

// Finish queues the run's end (status and end time), waits up to
// cfg.FlushTimeout for everything to be delivered, and stops. What is not
// delivered by then stays in the spool, and the error says how to deliver
// it (whet mlflow-sync --spool DIR); Summary tells the counts.
func (t *Tracker) Finish(status tracking.Status) error {
	if !status.Valid() {
		return fmt.Errorf("mlflow: finish: invalid status %q", status)
	}
	return t.finish(string(status), t.cfg.Now().UnixMilli(), t.cfg.FlushTimeout)
}

// finish queues a finish record (none when status is "") and stops after
// delivery or timeout.
func (t *Tracker) finish(status string, end int64, timeout time.Duration) error {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return errors.New("mlflow: the run is already finished")
	}
	t.finished = true
	if status != "" {
		t.queue = append(t.queue, entry{kind: kindFinish, status: status, end: end})
	}
	t.mu.Unlock()
	signal(t.persistWake)
	return t.stop(timeout)
}

// done reports whether everything queued is written and acknowledged.
func (t *Tracker) doneLocked() bool {
	return len(t.queue) == 0 && !t.writing && t.ackSeq >= t.nextSeq-1
}

// stop waits until everything is delivered or timeout passes, then stops
// the goroutines, and removes the spool when nothing is left in it.
func (t *Tracker) stop(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
wait:
	for {
		t.mu.Lock()
		done, ch := t.doneLocked() || t.abort, t.changed
		t.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ch:
		case <-timer.C:
			break wait
		}
	}
	t.stopOnce.Do(func() {
		close(t.stopPersist)
		t.cancel()
	})
	t.wg.Wait()

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	pending := t.total.Sub(t.delivered).Sub(t.rejected)
	var errs []error
	if pending.Total() > 0 || t.persistErr != nil || t.cfg.KeepSpool {
		if err := t.sp.close(false); err != nil {
			errs = append(errs, err)
		}
	} else if err := t.sp.close(true); err != nil {
		errs = append(errs, err)
	}
	if pending.Total() > 0 {
		last := ""
		if t.lastErr != "" {
			last = " (last error: " + t.lastErr + ")"
		}
		errs = append(errs, fmt.Errorf("mlflow: %s not delivered within %s%s; they are kept in %s: deliver them with `whet mlflow-sync --spool %s`",
			pending, timeout, last, t.sp.dir, t.sp.dir))
	}
	if t.rejected.Total() > 0 {
		errs = append(errs, fmt.Errorf("mlflow: the server refused %s: %s", t.rejected, t.lastErr))
	}
	return errors.Join(errs...)
}

// Summary says what was delivered, what waits in the spool and what the
// server refused.
func (t *Tracker) Summary() tracking.Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := tracking.SinkSummary{
		Sink: "mlflow", Target: t.runURL(), Delivered: t.delivered, Rejected: t.rejected,
		Pending: t.total.Sub(t.delivered).Sub(t.rejected), LastError: t.lastErr,
	}
	if s.Pending.Total() > 0 {
		s.Spool = t.sp.dir
	}
	return tracking.Summary{Sinks: []tracking.SinkSummary{s}}
}

// The journal writer.

func (t *Tracker) persistLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.persistWake:
			t.persist()
		case <-t.stopPersist:
			t.persist()
			return
		}
	}
}

// persist writes the queue to the journal in one write and one fsync.
func (t *Tracker) persist() {
	t.jmu.Lock()
	defer t.jmu.Unlock()
	t.mu.Lock()
	q, seq, size := t.queue, t.nextSeq, t.durable
	t.queue = nil
	t.writing = len(q) > 0
	t.mu.Unlock()
	if len(q) == 0 {
		return
	}
	var buf bytes.Buffer
	n := int64(0)
	for _, e := range q {
		for _, r := range splitEntry(e) {
			r.Seq = seq + n
			n++
			line, err := json.Marshal(r)
			if err != nil { // cannot happen for these types; keep the journal whole
				continue
			}
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	err := t.sp.append(buf.Bytes(), size)
	t.mu.Lock()
	t.writing = false
	if err != nil {
		t.queue = append(q, t.queue...)
		t.persistErr = err
		t.lastErr = err.Error()
		t.mu.Unlock()
		return
	}
	items := 0
	for _, e := range q {
		items += len(e.metrics) + len(e.kvs)
		if e.kind == kindArtifact {
			items++
		}
	}
	t.queued -= items
	t.nextSeq = seq + n
	t.durable = size + int64(buf.Len())
	t.persistErr = nil
	t.notifyLocked()
	t.mu.Unlock()
	signal(t.sendWake)
}

// splitEntry cuts one call's items into records that each fit a request.
func splitEntry(e entry) []*record {
	switch e.kind {
	case kindArtifact:
		return []*record{{Kind: kindArtifact, Local: e.local, Path: e.path}}
	case kindFinish:
		return []*record{{Kind: kindFinish, Status: e.status, EndTime: e.end}}
	case kindMetrics:
		var out []*record
		cur := &record{Kind: kindMetrics}
		for _, m := range e.metrics {
			sz := metricSize(m)
			if len(cur.Metrics) == recordMetrics || len(cur.Metrics) > 0 && cur.size+sz > recordBytes {
				out = append(out, cur)
				cur = &record{Kind: kindMetrics}
			}
			cur.Metrics = append(cur.Metrics, m)
			cur.size += sz
		}
		return append(out, cur)
	default: // params, tags
		limit := MaxParamsPerBatch
		if e.kind == kindTags {
			limit = MaxTagsPerBatch
		}
		var out []*record
		cur := &record{Kind: e.kind}
		add := func(kv KV) {
			if e.kind == kindParams {
				cur.Params = append(cur.Params, kv)
			} else {
				cur.Tags = append(cur.Tags, kv)
			}
		}
		count := 0
		for _, kv := range e.kvs {
			sz := kvSize(kv)
			if count == limit || count > 0 && cur.size+sz > recordBytes {
				out = append(out, cur)
				cur, count = &record{Kind: e.kind}, 0
			}
			add(kv)
			cur.size += sz
			count++
		}
		return append(out, cur)
	}
}

// metricSize bounds a metric's bytes in a request body.
func metricSize(m WireMetric) int { return jsonStringLen(m.Key) + 100 }

func kvSize(kv KV) int { return jsonStringLen(kv.Key) + jsonStringLen(kv.Value) + 20 }

func (r *record) bound() int {
	if r.size > 0 {
		return r.size
	}
	n := 0
	for _, m := range r.Metrics {
		n += metricSize(m)
	}
	for _, kv := range r.Params {
		n += kvSize(kv)
	}
	for _, kv := range r.Tags {
		n += kvSize(kv)
	}
	r.size = n
	return n
}

// The delivery loop.

// backoff doubles a delay from min to max, with 20% jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	j := time.Duration(float64(b.cur) * (0.8 + 0.4*rand.Float64()))
	return max(j, time.Millisecond)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until the tracker stops; false means it stopped.
func (t *Tracker) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

func (t *Tracker) sendLoop() {
	defer t.wg.Done()
	bo := backoff{min: t.cfg.RetryMin, max: t.cfg.RetryMax}
	failing := false
	fail := func(err error) {
		t.note(err)
		if !failing {
			failing = true
			t.cfg.Logf("mlflow: delivery to %s failing (%v); retrying in the background, keeping everything in %s", t.uri, err, t.sp.dir)
		}
	}
	ok := func() {
		bo.reset()
		if failing {
			failing = false
			t.cfg.Logf("mlflow: delivery to %s resumed", t.uri)
		}
	}
	for t.ctx.Err() == nil {
		t.mu.Lock()
		ready := t.st.Ready
		t.mu.Unlock()
		if !ready {
			if err := t.ensureRun(t.ctx); err != nil {
				fail(err)
				if !t.sleep(bo.next()) {
					return
				}
				continue
			}
			ok()
		}
		g, err := t.nextGroup()
		if err != nil {
			t.note(err)
			t.cfg.Logf("mlflow: %v", err)
			if !t.sleep(bo.next()) {
				return
			}
			continue
		}
		if g == nil {
			select {
			case <-t.sendWake:
			case <-t.ctx.Done():
				return
			}
			continue
		}
		if err := t.deliver(g); err != nil {
			if t.ctx.Err() != nil {
				return
			}
			switch classify(err) {
			case rejected:
				t.note(err)
				if len(g) > 1 {
					// Send the group's records one by one, to refuse
					// only the one at fault.
					t.isolate = len(g)
					continue
				}
				t.cfg.Logf("mlflow: the server refused record %d (%s): %v", g[0].Seq, g[0].Kind, err)
				t.acknowledge(g, err.Error())
				if t.isolate > 0 {
					t.isolate--
				}
				continue
			case ambiguous:
				if g[0].Kind == kindMetrics {
					t.uncertain = true
				}
			}
			fail(err)
			if !t.sleep(bo.next()) {
				return
			}
			continue
		}
		ok()
	}
}

// fill reads the next durable journal lines into buf; it returns how
// many records it added.
func (t *Tracker) fill() (int, error) {
	t.mu.Lock()
	end := t.durable
	t.mu.Unlock()
	added := 0
	for chunk := int64(readChunk); t.readOff < end; chunk *= 2 {
		n := min(end-t.readOff, chunk)
		data := make([]byte, n)
		if _, err := t.sp.readAt(data, t.readOff); err != nil {
			return added, fmt.Errorf("mlflow spool: read journal: %w", err)
		}
		last := bytes.LastIndexByte(data, '\n')
		if last < 0 {
			if n == end-t.readOff {
				return added, fmt.Errorf("mlflow spool: journal line at offset %d has no end", t.readOff)
			}
			continue // a line longer than the chunk: read more
		}
		off := t.readOff
		for _, line := range bytes.SplitAfter(data[:last+1], []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			off += int64(len(line))
			r := &record{}
			if err := json.Unmarshal(line, r); err != nil {
				t.note(fmt.Errorf("mlflow spool: skipped a corrupt journal line before offset %d: %w", off, err))
				continue
			}
			r.end = off
			t.buf = append(t.buf, r)
			added++
		}
		t.readOff += int64(last + 1)
		break
	}
	return added, nil
}

// nextGroup returns the next records to send in one request: one
// artifact or finish record, or consecutive records of one kind within
// MLflow's limits. It returns nil when nothing is waiting.
func (t *Tracker) nextGroup() ([]*record, error) {
	if len(t.buf) == 0 {
		if _, err := t.fill(); err != nil {
			return nil, err
		}
		if len(t.buf) == 0 {
			return nil, nil
		}
	}
	r0 := t.buf[0]
	if r0.Kind == kindArtifact || r0.Kind == kindFinish || t.isolate > 0 {
		return t.buf[:1], nil
	}
	count, size := len(r0.Metrics)+len(r0.Params)+len(r0.Tags), r0.bound()
	keys := map[string]bool{}
	for _, p := range r0.Params {
		keys[p.Key] = true
	}
	limit := recordMetrics
	switch r0.Kind {
	case kindParams:
		limit = MaxParamsPerBatch
	case kindTags:
		limit = MaxTagsPerBatch
	}
	i := 1
	for {
		if i == len(t.buf) {
			n, err := t.fill()
			if err != nil || n == 0 {
				break
			}
		}
		r := t.buf[i]
		c := len(r.Metrics) + len(r.Params) + len(r.Tags)
		if r.Kind != r0.Kind || count+c > limit || size+r.bound() > groupBytes {
			break
		}
		dup := false
		for _, p := range r.Params {
			if keys[p.Key] {
				dup = true
			}
		}
		if dup {
			break
		}
		for _, p := range r.Params {
			keys[p.Key] = true
		}
		count += c
		size += r.bound()
		i++
	}
	return t.buf[:i], nil
}

// acknowledge settles the first records of buf: delivered, or refused
// for reason.
func (t *Tracker) acknowledge(g []*record, reason string) {
	var c tracking.Counts
	for _, r := range g {
		c = c.Add(r.counts())
	}
	last := g[len(g)-1]
	t.mu.Lock()
	if reason == "" {
		t.delivered = t.delivered.Add(c)
	} else {
		t.rejected = t.rejected.Add(c)
		t.lastErr = reason
	}
	t.ackSeq = last.Seq
	if last.Kind == kindFinish {
		t.finishAcked = true
	}
	a := ackLine{Seq: last.Seq, End: last.end, Delivered: t.delivered, Rejected: t.rejected, Reason: reason, Finished: t.finishAcked}
	t.notifyLocked()
	t.mu.Unlock()
	if err := t.sp.writeAck(a); err != nil {
		t.note(err)
	}
	t.ackEnd = last.end
	t.buf = t.buf[len(g):]
	t.maybeCompact(a)
}

// maybeCompact empties the journal when everything in it is settled and
// it has grown past a few megabytes.
func (t *Tracker) maybeCompact(a ackLine) {
	if len(t.buf) > 0 || t.ackEnd < 4<<20 {
		return
	}
	t.jmu.Lock()
	defer t.jmu.Unlock()
	t.mu.Lock()
	settled := t.durable == t.ackEnd && t.readOff == t.ackEnd
	t.mu.Unlock()
	if !settled {
		return
	}
	if err := t.sp.compact(a); err != nil {
		t.note(err)
		return
	}
	t.mu.Lock()
	t.durable = 0
	t.mu.Unlock()
	t.readOff, t.ackEnd = 0, 0
}

// deliver sends one group and acknowledges what the server took.
func (t *Tracker) deliver(g []*record) error {
	t.mu.Lock()
	runID := t.st.RunID
	t.mu.Unlock()
	r0 := g[0]
	switch r0.Kind {
	case kindFinish:
		if err := t.cl.updateRun(t.ctx, runID, r0.Status, r0.EndTime); err != nil {
			return err
		}
		t.acknowledge(g, "")
		return nil
	case kindArtifact:
		if err := t.deliverArtifact(r0); err != nil {
			return err
		}
		t.acknowledge(g, "")
		return nil
	case kindMetrics:
		if t.uncertain {
			return t.verify(runID)
		}
	}
	batch := LogBatch{RunID: runID}
	for {
		batch.Metrics, batch.Params, batch.Tags = nil, nil, nil
		for _, r := range g {
			batch.Metrics = append(batch.Metrics, r.Metrics...)
			batch.Params = append(batch.Params, r.Params...)
			batch.Tags = append(batch.Tags, r.Tags...)
		}
		if r0.Kind == kindMetrics {
			batch.Tags = append(batch.Tags, KV{Key: t.marker, Value: strconv.FormatInt(g[len(g)-1].Seq, 10)})
		}
		body, err := encodeJSON(batch)
		if err != nil {
			return fmt.Errorf("mlflow: encode batch: %w", err)
		}
		if len(body) > MaxRequestBytes {
			if len(g) > 1 {
				g = g[:len(g)-1]
				continue
			}
			return &APIError{Method: "POST", Endpoint: "runs/log-batch", Status: 413,
				Message: fmt.Sprintf("record %d is %d bytes, over MLflow's limit of %d", r0.Seq, len(body), MaxRequestBytes)}
		}
		if err := t.cl.logBatch(t.ctx, body); err != nil {
			return err
		}
		t.acknowledge(g, "")
		if t.isolate > 0 {
			t.isolate--
		}
		return nil
	}
}

// verify reads the run's marker tag after an unanswered metrics request
// (or a restart) and acknowledges the records it shows the server took.
func (t *Tracker) verify(runID string) error {
	run, err := t.cl.getRun(t.ctx, runID)
	if err != nil {
		return &retryError{fmt.Errorf("check which metrics the server took: %w", err)}
	}
	v, _ := run.tag(t.marker)
	m, _ := strconv.ParseInt(v, 10, 64)
	for len(t.buf) > 0 && t.buf[len(t.buf)-1].Seq < m {
		n, err := t.fill()
		if err != nil {
			return &retryError{err}
		}
		if n == 0 {
			break
		}
	}
	n := 0
	for n < len(t.buf) && t.buf[n].Seq <= m {
		n++
	}
	if n > 0 {
		t.cfg.Logf("mlflow: the server had taken records up to %d already; not sending them again", m)
		t.acknowledge(t.buf[:n], "")
	}
	t.uncertain = false
	return nil
}

// ensureRun finds or creates the run on the server and marks it RUNNING.
func (t *Tracker) ensureRun(ctx context.Context) error {
	t.mu.Lock()
	st := t.st
	t.mu.Unlock()
	save := func(st spoolState) error {
		t.mu.Lock()
		t.st = st
		t.mu.Unlock()
		return t.sp.writeState(&st)
	}
	if st.RunID != "" {
		run, err := t.cl.getRun(ctx, st.RunID)
		if err != nil {
			return err
		}
		if run.Info.LifecycleStage != "" && run.Info.LifecycleStage != "active" {
			return &APIError{Method: "GET", Endpoint: "runs/get", Status: 400, Code: "INVALID_STATE",
				Message: fmt.Sprintf("run %s is %s; restore it first", st.RunID, run.Info.LifecycleStage)}
		}
		if st.Resume && run.Info.Status != "RUNNING" {
			if err := t.cl.updateRun(ctx, st.RunID, "RUNNING", 0); err != nil {
				return err
			}
		}
		st.ExperimentID, st.ArtifactURI, st.Ready = string(run.Info.ExperimentID), run.Info.ArtifactURI, true
		if st.RunName == "" {
			st.RunName = run.Info.RunName
		}
		return save(st)
	}
	if st.ExperimentID == "" {
		id, err := t.cl.getOrCreateExperiment(ctx, st.Experiment)
		if err != nil {
			return err
		}
		st.ExperimentID = id
		if err := save(st); err != nil {
			return err
		}
	}
	if st.CreateSent {
		run, err := t.cl.searchRunByTag(ctx, st.ExperimentID, TagSpool, st.SpoolID)
		if err != nil {
			return err
		}
		if run != nil {
			st.RunID, st.ArtifactURI, st.Ready = run.Info.id(), run.Info.ArtifactURI, true
			return save(st)
		}
	}
	st.CreateSent = true
	if err := save(st); err != nil {
		return err
	}
	run, err := t.cl.createRun(ctx, st.ExperimentID, st.RunName, st.User, st.StartTime, st.Tags)
	if err != nil {
		if classify(err) == notSent {
			st.CreateSent = false
			save(st)
		}
		return err
	}
	st.RunID, st.ArtifactURI, st.Ready = run.Info.id(), run.Info.ArtifactURI, true
	return save(st)
}
