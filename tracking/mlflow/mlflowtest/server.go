// Package mlflowtest is an in-process MLflow tracking server for tests: it
// implements the REST endpoints whet uses (experiments/get-by-name,
// experiments/create, runs/create, runs/get, runs/update, runs/set-tag,
// runs/log-batch, runs/search by one tag) and the artifact proxy's PUT,
// enforces MLflow's limits on log-batch as MLflow does (400
// INVALID_PARAMETER_VALUE), records every request and what it stored, and
// can be told to fail, drop connections, slow down, or go away and come
// back on the same address.
package mlflowtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MLflow's limits (mlflow/utils/validation.py).
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsTagsBatch  = 100
	MaxEntitiesPerBatch = 1000
	MaxRequestBytes     = 1_000_000
	MaxParamValue       = 6000
	MaxTagValue         = 5000
	MaxKey              = 250
)

// Mode is a way for a request to fail.
type Mode int

const (
	// Fail503 answers 503 without acting on the request.
	Fail503 Mode = iota
	// DropBefore closes the connection without acting or answering.
	DropBefore
	// DropAfter acts on the request, then closes the connection without
	// answering: the client cannot tell whether it landed.
	DropAfter
	// Fail503After acts on the request, then answers 503 (a proxy that
	// timed out while the server committed).
	Fail503After
)

// Metric is a stored metric point.
type Metric struct {
	Key       string
	Value     float64
	Timestamp int64
	Step      int64
}

// Run is a stored run.
type Run struct {
	ID, Name, ExperimentID, UserID, Status, ArtifactURI, Lifecycle string
	StartTime, EndTime                                             int64
	Params, Tags                                                   map[string]string
	Metrics                                                        []Metric
}

// Experiment is a stored experiment.
type Experiment struct {
	ID, Name, Lifecycle, ArtifactLocation string
}

// Request is a request the server received.
type Request struct {
	Method, Path, Authorization string
	Bytes                       int // body length
	Metrics, Params, Tags       int // entities of a log-batch
	Status                      int // the answer; 0 for a dropped connection
}

type failRule struct {
	endpoint string // "" for any
	n        int
	mode     Mode
}

// Server is the fake MLflow server. Its fields configure it and may be set
// before the first request.
type Server struct {
	// URL is the tracking URI, http://127.0.0.1:PORT.
	URL string
	// Token, when set, is the bearer token every request must carry.
	Token string
	// User and Password, when set, are the basic-auth credentials every
	// request must carry.
	User, Password string
	// Int64AsString writes int64 fields (timestamps, steps) as JSON
	// strings, as protobuf's JSON mapping does.
	Int64AsString bool
	// NumericIDs writes experiment ids as JSON numbers.
	NumericIDs bool
	// ArtifactRoot, when set, gives runs file: artifact URIs under it
	// instead of mlflow-artifacts: ones.
	ArtifactRoot string

	mu          sync.Mutex
	addr        string
	srv         *http.Server
	delay       time.Duration
	rules       []failRule
	experiments map[string]*Experiment
	runs        map[string]*Run
	runOrder    []string
	artifacts   map[string][]byte
	requests    []Request
	nextExp     int
}

// NewServer starts a server on a loopback port; Close stops it.
func NewServer() (*Server, error) {
	s := &Server{
		experiments: map[string]*Experiment{"0": {ID: "0", Name: "Default", Lifecycle: "active", ArtifactLocation: "mlflow-artifacts:/0"}},
		runs:        map[string]*Run{}, artifacts: map[string][]byte{}, nextExp: 1,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mlflowtest: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Stop makes the server go away: the port refuses connections and open
// connections are closed.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Start brings a stopped server back on the same address, with its data.
func (s *Server) Start() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("mlflowtest: listen again on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// Fail makes the next n requests to endpoint ("runs/log-batch", or ""
// for any) fail in mode.
func (s *Server) Fail(endpoint string, n int, mode Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, failRule{endpoint: endpoint, n: n, mode: mode})
}

// ClearFailures forgets the failures Fail asked for that have not
// happened yet.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// PendingFailures is the number of failures Fail asked for that have not
// happened yet.
func (s *Server) PendingFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rules {
		n += r.n
	}
	return n
}

// SetDelay makes every request wait d before it is handled.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Runs returns copies of the stored runs, in creation order.
func (s *Server) Runs() []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Run, 0, len(s.runOrder))
	for _, id := range s.runOrder {
		out = append(out, s.runs[id].clone())
	}
	return out
}

// Run returns a copy of a stored run.
func (s *Server) Run(id string) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		return Run{}, false
	}
	return r.clone(), true
}

// Experiments returns the stored experiments by name.
func (s *Server) Experiments() map[string]Experiment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Experiment{}
	for _, e := range s.experiments {
		out[e.Name] = *e
	}
	return out
}

// AddRun stores a run (for tests that resume one), returning its id.
func (s *Server) AddRun(expID, name, status string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.newRunLocked(expID, name, "test", time.Now().UnixMilli())
	r.Status = status
	return r.ID
}

// Artifact returns an uploaded artifact by its path after the proxy's
// route (e.g. "0/<run>/artifacts/model/adapter.bin").
func (s *Server) Artifact(p string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.artifacts[p]
	return b, ok
}

// ArtifactPaths lists the uploaded artifacts.
func (s *Server) ArtifactPaths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.artifacts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *Run) clone() Run {
	c := *r
	c.Params, c.Tags = map[string]string{}, map[string]string{}
	for k, v := range r.Params {
		c.Params[k] = v
	}
	for k, v := range r.Tags {
		c.Tags[k] = v
	}
	c.Metrics = append([]Metric(nil), r.Metrics...)
	return c
}

// apiError is MLflow's error body.
type apiError struct {
	status int
	code   string
	msg    string
}

func invalid(format string, args ...any) *apiError {
	return &apiError{400, "INVALID_PARAMETER_VALUE", fmt.Sprintf(format, args...)}
}

func (s *Server) takeRule(endpoint string) (Mode, bool) {
	for i := range s.rules {
		r := &s.rules[i]
		if r.n > 0 && (r.endpoint == "" || r.endpoint == endpoint) {
			r.n--
			return r.mode, true
		}
	}
	return 0, false
}

func (s *Server) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	endpoint := strings.TrimPrefix(req.URL.Path, "/api/2.0/mlflow/")
	if strings.HasPrefix(req.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/") {
		endpoint = "mlflow-artifacts"
	}
	s.mu.Lock()
	delay := s.delay
	mode, fail := s.takeRule(endpoint)
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	rec := Request{Method: req.Method, Path: req.URL.Path, Authorization: req.Header.Get("Authorization"), Bytes: len(body)}
	if fail && (mode == Fail503 || mode == DropBefore) {
		s.finishRequest(w, rec, mode, nil, nil)
		return
	}
	var out any
	var aerr *apiError
	if aerr = s.checkAuth(req); aerr == nil {
		out, aerr = s.dispatch(req, endpoint, body, &rec)
	}
	if fail {
		s.finishRequest(w, rec, mode, nil, nil)
		return
	}
	s.finishRequest(w, rec, -1, out, aerr)
}

// finishRequest answers (or drops) and records the request.
func (s *Server) finishRequest(w http.ResponseWriter, rec Request, mode Mode, out any, aerr *apiError) {
	switch {
	case mode == DropBefore || mode == DropAfter:
		rec.Status = 0
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
	case mode == Fail503 || mode == Fail503After:
		rec.Status = 503
		writeJSON(w, 503, map[string]string{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected failure"})
	case aerr != nil:
		rec.Status = aerr.status
		writeJSON(w, aerr.status, map[string]string{"error_code": aerr.code, "message": aerr.msg})
	default:
		rec.Status = 200
		if out == nil {
			out = map[string]any{}
		}
		writeJSON(w, 200, out)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) checkAuth(req *http.Request) *apiError {
	got := req.Header.Get("Authorization")
	switch {
	case s.Token != "":
		if got != "Bearer "+s.Token {
			return &apiError{401, "UNAUTHENTICATED", "a valid bearer token is required"}
		}
	case s.User != "":
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.User+":"+s.Password))
		if got != want {
			return &apiError{401, "UNAUTHENTICATED", "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate."}
		}
	}
	return nil
}

func (s *Server) dispatch(req *http.Request, endpoint string, body []byte, rec *Request) (any, *apiError) {
	route := req.Method + " " + endpoint
	if endpoint == "mlflow-artifacts" {
		if req.Method != http.MethodPut {
			return nil, &apiError{405, "BAD_REQUEST", "only PUT is implemented"}
		}
		p := strings.TrimPrefix(req.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/")
		if p == "" || strings.Contains(p, "..") {
			return nil, invalid("invalid artifact path %q", p)
		}
		s.mu.Lock()
		s.artifacts[p] = body
		s.mu.Unlock()
		return map[string]any{}, nil
	}
	var in map[string]json.RawMessage
	if req.Method == http.MethodPost {
		if len(body) > MaxRequestBytes && endpoint == "runs/log-batch" {
			return nil, invalid("Batched logging API requests must be at most %d bytes, got a request of size %d.", MaxRequestBytes, len(body))
		}
		if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return nil, &apiError{400, "BAD_REQUEST", "Content-Type must be application/json"}
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, &apiError{400, "MALFORMED_REQUEST", err.Error()}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch route {
	case "GET experiments/get-by-name":
		name := req.URL.Query().Get("experiment_name")
		for _, e := range s.experiments {
			if e.Name == name {
				return map[string]any{"experiment": s.expJSON(e)}, nil
			}
		}
		return nil, &apiError{404, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Could not find experiment with name '%s'", name)}
	case "POST experiments/create":
		var name string
		json.Unmarshal(in["name"], &name)
		if name == "" {
			return nil, invalid("Missing value for required parameter 'name'.")
		}
		for _, e := range s.experiments {
			if e.Name == name {
				return nil, &apiError{400, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("Experiment '%s' already exists.", name)}
			}
		}
		id := strconv.Itoa(s.nextExp * 1000003)
		s.nextExp++
		s.experiments[id] = &Experiment{ID: id, Name: name, Lifecycle: "active", ArtifactLocation: "mlflow-artifacts:/" + id}
		return map[string]any{"experiment_id": s.idJSON(id)}, nil
	case "POST runs/create":
		expID, _ := str(in["experiment_id"])
		if expID == "" {
			expID = "0"
		}
		if _, ok := s.experiments[expID]; !ok {
			return nil, &apiError{404, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("No Experiment with id=%s exists", expID)}
		}
		name, _ := str(in["run_name"])
		user, _ := str(in["user_id"])
		start, err := i64(in["start_time"])
		if err != nil {
			return nil, invalid("start_time: %v", err)
		}
		var tags []kv
		json.Unmarshal(in["tags"], &tags)
		r := s.newRunLocked(expID, name, user, start)
		for _, t := range tags {
			r.Tags[t.Key] = t.Value
		}
		if r.Name == "" {
			r.Name = r.Tags["mlflow.runName"]
		}
		r.Tags["mlflow.runName"] = r.Name
		return map[string]any{"run": s.runJSON(r)}, nil
	case "GET runs/get":
		r, aerr := s.findRun(req.URL.Query().Get("run_id"))
		if aerr != nil {
			return nil, aerr
		}
		return map[string]any{"run": s.runJSON(r)}, nil
	case "POST runs/update":
		id, _ := str(in["run_id"])
		r, aerr := s.findRun(id)
		if aerr != nil {
			return nil, aerr
		}
		if st, _ := str(in["status"]); st != "" {
			switch st {
			case "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED":
				r.Status = st
			default:
				return nil, invalid("Invalid value %q for parameter 'status'", st)
			}
		}
		if in["end_time"] != nil {
			end, err := i64(in["end_time"])
			if err != nil {
				return nil, invalid("end_time: %v", err)
			}
			r.EndTime = end
		}
		return map[string]any{"run_info": s.runJSON(r)["info"]}, nil
	case "POST runs/set-tag":
		id, _ := str(in["run_id"])
		r, aerr := s.findRun(id)
		if aerr != nil {
			return nil, aerr
		}
		k, _ := str(in["key"])
		v, _ := str(in["value"])
		if aerr := checkKey("tag", k); aerr != nil {
			return nil, aerr
		}
		r.Tags[k] = v
		return map[string]any{}, nil
	case "POST runs/log-batch":
		return s.logBatch(in, rec)
	case "POST runs/search":
		return s.search(in)
	}
	return nil, &apiError{404, "ENDPOINT_NOT_FOUND", "no such endpoint: " + route}
}

var keyRE = regexp.MustCompile(`^[/\w.\- ]*$`)

func checkKey(kind, k string) *apiError {
	if k == "" || !keyRE.MatchString(k) || len([]rune(k)) > MaxKey {
		return invalid("Invalid %s name: '%s'.", kind, k)
	}
	clean := strings.Split(k, "/")
	for _, part := range clean {
		if part == "" || part == "." || part == ".." {
			return invalid("Invalid %s name: '%s'. Names may be treated as files in certain cases, and must not resolve to other names when treated as such.", kind, k)
		}
	}
	return nil
}

type kv struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type wireMetric struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Timestamp json.RawMessage `json:"timestamp"`
	Step      json.RawMessage `json:"step"`
}

func (s *Server) logBatch(in map[string]json.RawMessage, rec *Request) (any, *apiError) {
	id, _ := str(in["run_id"])
	var metrics []wireMetric
	var params, tags []kv
	if err := json.Unmarshal(orEmpty(in["metrics"]), &metrics); err != nil {
		return nil, &apiError{400, "MALFORMED_REQUEST", "metrics: " + err.Error()}
	}
	if err := json.Unmarshal(orEmpty(in["params"]), &params); err != nil {
		return nil, &apiError{400, "MALFORMED_REQUEST", "params: " + err.Error()}
	}
	if err := json.Unmarshal(orEmpty(in["tags"]), &tags); err != nil {
		return nil, &apiError{400, "MALFORMED_REQUEST", "tags: " + err.Error()}
	}
	rec.Metrics, rec.Params, rec.Tags = len(metrics), len(params), len(tags)
	limit := func(entity string, max, n int) *apiError {
		if n > max {
			return invalid("A batch logging request can contain at most %d %s. Got %d %s. Please split up %s across multiple requests and try again.", max, entity, n, entity, entity)
		}
		return nil
	}
	for _, e := range []*apiError{
		limit("metrics", MaxMetricsPerBatch, len(metrics)),
		limit("params", MaxParamsTagsBatch, len(params)),
		limit("tags", MaxParamsTagsBatch, len(tags)),
		limit("metrics, params, and tags", MaxEntitiesPerBatch, len(metrics)+len(params)+len(tags)),
	} {
		if e != nil {
			return nil, e
		}
	}
	pts := make([]Metric, len(metrics))
	for i, m := range metrics {
		if aerr := checkKey("metric", m.Key); aerr != nil {
			return nil, aerr
		}
		v, err := f64(m.Value)
		if err != nil {
			return nil, invalid("Got invalid value %s for metric '%s'", m.Value, m.Key)
		}
		ts, err := i64(m.Timestamp)
		if err != nil || ts < 0 {
			return nil, invalid("Got invalid timestamp %s for metric '%s'", m.Timestamp, m.Key)
		}
		step, err := i64(m.Step)
		if err != nil {
			return nil, invalid("Got invalid step %s for metric '%s'", m.Step, m.Key)
		}
		pts[i] = Metric{Key: m.Key, Value: v, Timestamp: ts, Step: step}
	}
	seen := map[string]bool{}
	for _, p := range params {
		if aerr := checkKey("parameter", p.Key); aerr != nil {
			return nil, aerr
		}
		if len([]rune(p.Value)) > MaxParamValue {
			return nil, invalid("Param value '%.20s...' had length %d, which exceeded length limit of %d", p.Value, len([]rune(p.Value)), MaxParamValue)
		}
		if seen[p.Key] {
			return nil, invalid("Duplicate parameter keys have been submitted: ['%s'].", p.Key)
		}
		seen[p.Key] = true
	}
	for _, t := range tags {
		if aerr := checkKey("tag", t.Key); aerr != nil {
			return nil, aerr
		}
		if len([]rune(t.Value)) > MaxTagValue {
			return nil, invalid("Tag value '%.20s...' had length %d, which exceeded length limit of %d", t.Value, len([]rune(t.Value)), MaxTagValue)
		}
	}
	r, aerr := s.findRun(id)
	if aerr != nil {
		return nil, aerr
	}
	if r.Lifecycle != "active" {
		return nil, invalid("The run %s must be in the 'active' state. Current state is %s.", id, r.Lifecycle)
	}
	for _, p := range params {
		if old, ok := r.Params[p.Key]; ok && old != p.Value {
			return nil, invalid("Changing param values is not allowed. Param with key='%s' was already logged with value='%s' for run ID='%s'. Attempted logging new value '%s'.", p.Key, old, id, p.Value)
		}
	}
	// MLflow's order: params, metrics, tags.
	for _, p := range params {
		r.Params[p.Key] = p.Value
	}
	r.Metrics = append(r.Metrics, pts...)
	for _, t := range tags {
		r.Tags[t.Key] = t.Value
	}
	return map[string]any{}, nil
}

var searchTagRE = regexp.MustCompile("^tags\\.(?:`([^`]+)`|([\\w.]+))\\s*=\\s*'((?:[^'\\\\]|\\\\.)*)'$")

func (s *Server) search(in map[string]json.RawMessage) (any, *apiError) {
	var ids []string
	json.Unmarshal(in["experiment_ids"], &ids)
	filter, _ := str(in["filter"])
	var key, val string
	if filter != "" {
		m := searchTagRE.FindStringSubmatch(strings.TrimSpace(filter))
		if m == nil {
			return nil, invalid("mlflowtest supports only filters of the form tags.`key` = 'value', got %q", filter)
		}
		key, val = m[1]+m[2], strings.ReplaceAll(m[3], `\'`, "'")
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	runs := []any{}
	for _, id := range s.runOrder {
		r := s.runs[id]
		if !want[r.ExperimentID] || r.Lifecycle != "active" {
			continue
		}
		if key != "" && r.Tags[key] != val {
			continue
		}
		runs = append(runs, s.runJSON(r))
	}
	return map[string]any{"runs": runs}, nil
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func (s *Server) newRunLocked(expID, name, user string, start int64) *Run {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	art := "mlflow-artifacts:/" + expID + "/" + id + "/artifacts"
	if s.ArtifactRoot != "" {
		art = "file://" + s.ArtifactRoot + "/" + expID + "/" + id + "/artifacts"
	}
	r := &Run{ID: id, Name: name, ExperimentID: expID, UserID: user, Status: "RUNNING", ArtifactURI: art,
		Lifecycle: "active", StartTime: start, Params: map[string]string{}, Tags: map[string]string{}}
	s.runs[id] = r
	s.runOrder = append(s.runOrder, id)
	return r
}

func (s *Server) findRun(id string) (*Run, *apiError) {
	r, ok := s.runs[id]
	if !ok {
		return nil, &apiError{404, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Run '%s' not found", id)}
	}
	return r, nil
}

func (s *Server) int64JSON(v int64) any {
	if s.Int64AsString {
		return strconv.FormatInt(v, 10)
	}
	return v
}

func (s *Server) idJSON(id string) any {
	if s.NumericIDs {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			return n
		}
	}
	return id
}

func (s *Server) expJSON(e *Experiment) map[string]any {
	return map[string]any{"experiment_id": s.idJSON(e.ID), "name": e.Name, "lifecycle_stage": e.Lifecycle,
		"artifact_location": e.ArtifactLocation, "creation_time": s.int64JSON(1), "last_update_time": s.int64JSON(1)}
}

func (s *Server) runJSON(r *Run) map[string]any {
	info := map[string]any{"run_id": r.ID, "run_uuid": r.ID, "run_name": r.Name, "experiment_id": s.idJSON(r.ExperimentID),
		"user_id": r.UserID, "status": r.Status, "start_time": s.int64JSON(r.StartTime), "artifact_uri": r.ArtifactURI,
		"lifecycle_stage": r.Lifecycle}
	if r.EndTime > 0 {
		info["end_time"] = s.int64JSON(r.EndTime)
	}
	latest := map[string]Metric{}
	for _, m := range r.Metrics {
		if old, ok := latest[m.Key]; !ok || m.Step > old.Step || m.Step == old.Step && m.Timestamp >= old.Timestamp {
			latest[m.Key] = m
		}
	}
	var metrics, params, tags []any
	for _, k := range sortedKeys(latest) {
		m := latest[k]
		metrics = append(metrics, map[string]any{"key": k, "value": floatJSON(m.Value), "timestamp": s.int64JSON(m.Timestamp), "step": s.int64JSON(m.Step)})
	}
	for _, k := range sortedKeys(r.Params) {
		params = append(params, kv{k, r.Params[k]})
	}
	for _, k := range sortedKeys(r.Tags) {
		tags = append(tags, kv{k, r.Tags[k]})
	}
	return map[string]any{"info": info, "data": map[string]any{"metrics": metrics, "params": params, "tags": tags}}
}

func floatJSON(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// str reads a JSON string, or a number as its text.
func str(b json.RawMessage) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return "", nil
	}
	if b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// i64 reads an int64 given as a JSON number or string.
func i64(b json.RawMessage) (int64, error) {
	s, err := str(b)
	if err != nil {
		return 0, err
	}
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// f64 reads a double: a number, or "NaN", "Infinity", "-Infinity".
func f64(b json.RawMessage) (float64, error) {
	s, err := str(b)
	if err != nil {
		return 0, err
	}
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}
