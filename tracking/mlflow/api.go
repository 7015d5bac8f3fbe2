package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MLflow's limits on one runs/log-batch request
// (mlflow/utils/validation.py; the REST API's "Request Limits").
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsPerBatch   = 100
	MaxTagsPerBatch     = 100
	MaxEntitiesPerBatch = 1000
	MaxRequestBytes     = 1_000_000
)

// Int64 is an int64 field of MLflow's JSON: protobuf's JSON mapping
// writes 64-bit integers as strings, MLflow's Python server as numbers;
// both are read. It is written as a number.
type Int64 int64

// UnmarshalJSON reads a JSON number or a string holding one.
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("int64 field: %w", err)
		}
		s = strings.TrimSpace(s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64 {
			return fmt.Errorf("int64 field: %q is not an integer", s)
		}
		v = int64(f)
	}
	*n = Int64(v)
	return nil
}

// ID is a string identifier (experiment_id, run_id) that some servers
// write as a number; both are read.
type ID string

// UnmarshalJSON reads a JSON string or number.
func (id *ID) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "null":
		return nil
	case strings.HasPrefix(s, `"`):
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("id field: %w", err)
		}
		*id = ID(v)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("id field: %s is neither a string nor a number", s)
		}
		*id = ID(n.String())
	}
	return nil
}

// Float is a double of MLflow's JSON: NaN and the infinities are written
// as protobuf's JSON mapping writes them ("NaN", "Infinity",
// "-Infinity"), since JSON numbers cannot hold them; numbers and those
// strings are read.
type Float float64

// MarshalJSON writes a number, or a string for NaN and the infinities.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or one of the strings MarshalJSON writes.
func (f *Float) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("double field: %w", err)
		}
	}
	switch s {
	case "NaN", "nan":
		*f = Float(math.NaN())
		return nil
	case "Infinity", "inf":
		*f = Float(math.Inf(1))
		return nil
	case "-Infinity", "-inf":
		*f = Float(math.Inf(-1))
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("double field: %q is not a number", s)
	}
	*f = Float(v)
	return nil
}

// Wire types of MLflow's REST API (mlflow/protos/service.proto).
type (
	// KV is a param or tag.
	KV struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	// WireMetric is one metric point.
	WireMetric struct {
		Key       string `json:"key"`
		Value     Float  `json:"value"`
		Timestamp Int64  `json:"timestamp"`
		Step      Int64  `json:"step"`
	}
	// Experiment is an experiment as the API returns it.
	Experiment struct {
		ExperimentID     ID     `json:"experiment_id"`
		Name             string `json:"name"`
		ArtifactLocation string `json:"artifact_location,omitempty"`
		LifecycleStage   string `json:"lifecycle_stage,omitempty"`
		CreationTime     Int64  `json:"creation_time,omitempty"`
		LastUpdateTime   Int64  `json:"last_update_time,omitempty"`
		Tags             []KV   `json:"tags,omitempty"`
	}
	// RunInfo is a run's metadata.
	RunInfo struct {
		RunID          ID     `json:"run_id"`
		RunUUID        ID     `json:"run_uuid,omitempty"`
		RunName        string `json:"run_name,omitempty"`
		ExperimentID   ID     `json:"experiment_id"`
		UserID         string `json:"user_id,omitempty"`
		Status         string `json:"status,omitempty"`
		StartTime      Int64  `json:"start_time,omitempty"`
		EndTime        Int64  `json:"end_time,omitempty"`
		ArtifactURI    string `json:"artifact_uri,omitempty"`
		LifecycleStage string `json:"lifecycle_stage,omitempty"`
	}
	// RunData is what a run holds.
	RunData struct {
		Metrics []WireMetric `json:"metrics,omitempty"`
		Params  []KV         `json:"params,omitempty"`
		Tags    []KV         `json:"tags,omitempty"`
	}
	// Run is a run as the API returns it.
	Run struct {
		Info RunInfo `json:"info"`
		Data RunData `json:"data"`
	}
	// LogBatch is the body of runs/log-batch.
	LogBatch struct {
		RunID   string       `json:"run_id"`
		Metrics []WireMetric `json:"metrics,omitempty"`
		Params  []KV         `json:"params,omitempty"`
		Tags    []KV         `json:"tags,omitempty"`
	}
)

// id returns the run's id, from run_uuid on old servers.
func (i RunInfo) id() string {
	if i.RunID != "" {
		return string(i.RunID)
	}
	return string(i.RunUUID)
}

// tag returns the value of a run's tag.
func (r *Run) tag(key string) (string, bool) {
	for _, t := range r.Data.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// APIError is an error response of the MLflow server.
type APIError struct {
	Method, Endpoint string
	Status           int    // HTTP status
	Code             string // MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message          string
}

func (e *APIError) Error() string {
	msg := e.Message
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	return fmt.Sprintf("mlflow %s %s: HTTP %d %s", e.Method, e.Endpoint, e.Status, strings.TrimSpace(msg))
}

// outcome classifies a failed request for the delivery loop.
type outcome int

const (
	// notSent: the server did not act on the request (it could not be
	// reached, or it answered 401, 403, 404, 408 or 429); retry.
	notSent outcome = iota
	// ambiguous: the server may have acted on it (the connection broke
	// after the request went out, a timeout, a 5xx); retry after
	// checking what landed.
	ambiguous
	// rejected: the server refused the request for good (400 and other
	// 4xx): sending it again cannot succeed.
	rejected
)

// retryError is a failure that says nothing about the request it came
// before (a check of what the server holds failed): retry.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// localError is a refusal found before sending (a local file that is
// gone, an artifact store whet cannot write to): retrying cannot help.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// classify sorts a request error.
func classify(err error) outcome {
	var re *retryError
	if errors.As(err, &re) {
		return notSent
	}
	var le *localError
	if errors.As(err, &le) {
		return rejected
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == 401 || ae.Status == 403 || ae.Status == 404 || ae.Status == 408 || ae.Status == 429:
			return notSent
		case ae.Status >= 400 && ae.Status < 500:
			return rejected
		default:
			return ambiguous
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return notSent
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return notSent
	}
	return ambiguous
}

// permanent reports whether err is a refusal that retrying will not
// change at start-up (a 4xx other than 408 and 429: a wrong token, an
// unknown MLFLOW_RUN_ID, a deleted experiment).
func permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 408 && ae.Status != 429
}

// client calls one MLflow server's REST API.
type client struct {
	base    *url.URL // the tracking URI
	hc      *http.Client
	auth    func(*http.Request)
	timeout time.Duration // per request
}

// endpointURL is base + "/api/2.0/mlflow/" + endpoint.
func (c *client) endpointURL(endpoint string) string {
	return strings.TrimRight(c.base.String(), "/") + "/api/2.0/mlflow/" + endpoint
}

// call sends one request: in (when not nil) as JSON, out (when not nil)
// filled from the response.
func (c *client) call(ctx context.Context, method, endpoint string, query url.Values, in, out any) error {
	u := c.endpointURL(endpoint)
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := encodeJSON(in)
		if err != nil {
			return fmt.Errorf("mlflow %s %s: %w", method, endpoint, err)
		}
		body = bytes.NewReader(b)
	}
	return c.send(ctx, method, u, endpoint, body, "application/json", out)
}

// send does one HTTP request with the client's auth and timeout.
func (c *client) send(ctx context.Context, method, u, endpoint string, body io.Reader, contentType string, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("mlflow %s %s: %w", method, endpoint, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "whet-mlflow")
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mlflow %s %s: %w", method, endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("mlflow %s %s: read response: %w", method, endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Method: method, Endpoint: endpoint, Status: resp.StatusCode}
		var eb struct {
			ErrorCode string `json:"error_code"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(data, &eb) == nil && (eb.ErrorCode != "" || eb.Message != "") {
			ae.Code, ae.Message = eb.ErrorCode, eb.Message
		} else {
			ae.Message = http.StatusText(resp.StatusCode)
			if s := strings.TrimSpace(string(data)); s != "" && len(s) < 300 && utf8.ValidString(s) {
				ae.Message += ": " + s
			}
		}
		return ae
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("mlflow %s %s: decode response: %w", method, endpoint, err)
		}
	}
	return nil
}

// encodeJSON marshals v without escaping <, > and & (which would make a
// body longer than MLflow's limit counts).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonStringLen bounds the length of s as a JSON string, quotes included,
// as encodeJSON writes it.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// API calls.

func (c *client) getExperimentByName(ctx context.Context, name string) (*Experiment, error) {
	var out struct {
		Experiment Experiment `json:"experiment"`
	}
	err := c.call(ctx, http.MethodGet, "experiments/get-by-name", url.Values{"experiment_name": {name}}, nil, &out)
	if err != nil {
		return nil, err
	}
	return &out.Experiment, nil
}

func (c *client) createExperiment(ctx context.Context, name string) (string, error) {
	var out struct {
		ExperimentID ID `json:"experiment_id"`
	}
	if err := c.call(ctx, http.MethodPost, "experiments/create", nil, map[string]any{"name": name}, &out); err != nil {
		return "", err
	}
	if out.ExperimentID == "" {
		return "", fmt.Errorf("mlflow experiments/create %q: the response has no experiment_id", name)
	}
	return string(out.ExperimentID), nil
}

// getOrCreateExperiment returns the id of the active experiment called
// name, creating it when there is none.
func (c *client) getOrCreateExperiment(ctx context.Context, name string) (string, error) {
	for attempt := 0; ; attempt++ {
		exp, err := c.getExperimentByName(ctx, name)
		var ae *APIError
		switch {
		case err == nil:
			if exp.LifecycleStage != "" && exp.LifecycleStage != "active" {
				return "", &APIError{Method: "GET", Endpoint: "experiments/get-by-name", Status: 400, Code: "INVALID_STATE",
					Message: fmt.Sprintf("experiment %q (id %s) is %s; restore it or choose another experiment name", name, exp.ExperimentID, exp.LifecycleStage)}
			}
			return string(exp.ExperimentID), nil
		case errors.As(err, &ae) && (ae.Code == "RESOURCE_DOES_NOT_EXIST" || ae.Status == 404 && ae.Code == ""):
		default:
			return "", err
		}
		id, err := c.createExperiment(ctx, name)
		if err == nil {
			return id, nil
		}
		// Someone else created it meanwhile: look it up again.
		if errors.As(err, &ae) && (ae.Code == "RESOURCE_ALREADY_EXISTS" || ae.Code == "ALREADY_EXISTS") && attempt == 0 {
			continue
		}
		return "", err
	}
}

func (c *client) createRun(ctx context.Context, expID, name, user string, start int64, tags []KV) (*Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	in := map[string]any{"experiment_id": expID, "start_time": start, "tags": tags}
	if name != "" {
		in["run_name"] = name
	}
	if user != "" {
		in["user_id"] = user
	}
	if err := c.call(ctx, http.MethodPost, "runs/create", nil, in, &out); err != nil {
		return nil, err
	}
	if out.Run.Info.id() == "" {
		return nil, errors.New("mlflow runs/create: the response has no run_id")
	}
	return &out.Run, nil
}

func (c *client) getRun(ctx context.Context, runID string) (*Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	if err := c.call(ctx, http.MethodGet, "runs/get", url.Values{"run_id": {runID}}, nil, &out); err != nil {
		return nil, err
	}
	return &out.Run, nil
}

// searchRunByTag returns the active run of experiment expID whose tag key
// is value, or nil.
func (c *client) searchRunByTag(ctx context.Context, expID, key, value string) (*Run, error) {
	var out struct {
		Runs []Run `json:"runs"`
	}
	in := map[string]any{
		"experiment_ids": []string{expID},
		"filter":         fmt.Sprintf("tags.`%s` = '%s'", key, strings.ReplaceAll(value, "'", `\'`)),
		"max_results":    1,
		"run_view_type":  "ACTIVE_ONLY",
	}
	if err := c.call(ctx, http.MethodPost, "runs/search", nil, in, &out); err != nil {
		return nil, err
	}
	if len(out.Runs) == 0 {
		return nil, nil
	}
	return &out.Runs[0], nil
}

func (c *client) updateRun(ctx context.Context, runID, status string, end int64) error {
	in := map[string]any{"run_id": runID, "run_uuid": runID, "status": status}
	if end > 0 {
		in["end_time"] = end
	}
	return c.call(ctx, http.MethodPost, "runs/update", nil, in, nil)
}

func (c *client) logBatch(ctx context.Context, body []byte) error {
	return c.send(ctx, http.MethodPost, c.endpointURL("runs/log-batch"), "runs/log-batch", bytes.NewReader(body), "application/json", nil)
}
