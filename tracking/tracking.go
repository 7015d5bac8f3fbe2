package tracking

import (
	"fmt"
	"strings"
	"time"
)

// Status is how a run ended, as MLflow names it.
type Status string

// The statuses a run can finish with.
const (
	StatusFinished Status = "FINISHED"
	StatusFailed   Status = "FAILED"
	StatusKilled   Status = "KILLED"
)

// Valid reports whether s is one of the statuses a run can finish with.
func (s Status) Valid() bool {
	switch s {
	case StatusFinished, StatusFailed, StatusKilled:
		return true
	}
	return false
}

// ParseStatus reads a status, case-insensitively.
func ParseStatus(s string) (Status, error) {
	st := Status(strings.ToUpper(strings.TrimSpace(s)))
	if !st.Valid() {
		return "", fmt.Errorf("run status %q: want FINISHED, FAILED or KILLED", s)
	}
	return st, nil
}

// Tracker receives what a training run reports. Implementations are safe
// for use from several goroutines. Their errors are for reporting: a
// trainer prints them and carries on, since losing a metric must never
// stop a training run.
type Tracker interface {
	// LogParams records the run's parameters (hyperparameters, the
	// recipe flattened by FlattenParams). A parameter's value cannot
	// change once logged.
	LogParams(params map[string]string) error
	// LogMetrics records metric values at one step, taken at time t (the
	// zero time means now).
	LogMetrics(step int64, metrics map[string]float64, t time.Time) error
	// SetTags sets tags on the run; a later value replaces an earlier one.
	SetTags(tags map[string]string) error
	// LogArtifact records the file or directory at localPath under
	// artifactPath (a slash-separated directory inside the run's
	// artifacts, "" for the root). A file keeps its base name; a
	// directory's contents are copied into artifactPath.
	LogArtifact(localPath, artifactPath string) error
	// Finish ends the run with a status, delivering what it can first.
	// Nothing may be logged after it.
	Finish(status Status) error
}

// Metric is one value of one metric: what MLflow stores per point.
type Metric struct {
	Key       string
	Value     float64
	Timestamp int64 // milliseconds since the Unix epoch
	Step      int64
}

// Millis is t in milliseconds since the Unix epoch, or now for the zero
// time; times before the epoch are clamped to 0, as MLflow requires a
// non-negative timestamp.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return max(t.UnixMilli(), 0)
}

// Counts counts logged items by kind: metric values, params, tags, and
// LogArtifact calls.
type Counts struct {
	Metrics   int64 `json:"metrics"`
	Params    int64 `json:"params"`
	Tags      int64 `json:"tags"`
	Artifacts int64 `json:"artifacts"`
}

// Total is the number of items of every kind.
func (c Counts) Total() int64 { return c.Metrics + c.Params + c.Tags + c.Artifacts }

// Add returns c + d.
func (c Counts) Add(d Counts) Counts {
	return Counts{c.Metrics + d.Metrics, c.Params + d.Params, c.Tags + d.Tags, c.Artifacts + d.Artifacts}
}

// Sub returns c - d.
func (c Counts) Sub(d Counts) Counts {
	return Counts{c.Metrics - d.Metrics, c.Params - d.Params, c.Tags - d.Tags, c.Artifacts - d.Artifacts}
}

func (c Counts) String() string {
	return fmt.Sprintf("%d metrics, %d params, %d tags, %d artifacts", c.Metrics, c.Params, c.Tags, c.Artifacts)
}

// SinkSummary says what one sink delivered.
type SinkSummary struct {
	Sink      string // kind of sink: "mlflow", "mlflow-file"
	Target    string // where the run lives: its URL or directory
	Delivered Counts // accepted by the destination
	Pending   Counts // not delivered yet; kept in Spool
	Rejected  Counts // refused by the destination for good (see LastError)
	Spool     string // directory holding what is pending, "" when nothing is
	LastError string // the most recent delivery error, "" if none
}

func (s SinkSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: delivered %s", s.Sink, s.Target, s.Delivered)
	if s.Pending.Total() > 0 {
		fmt.Fprintf(&b, "; pending %s", s.Pending)
		if s.Spool != "" {
			fmt.Fprintf(&b, " in %s (deliver them with: whet mlflow-sync --spool %s)", s.Spool, s.Spool)
		}
	}
	if s.Rejected.Total() > 0 {
		fmt.Fprintf(&b, "; rejected %s", s.Rejected)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "; last error: %s", s.LastError)
	}
	return b.String()
}

// Summary says what each sink of a tracker delivered.
type Summary struct {
	Sinks []SinkSummary
}

// Pending is the number of items not delivered by any sink.
func (s Summary) Pending() int64 {
	var n int64
	for _, k := range s.Sinks {
		n += k.Pending.Total()
	}
	return n
}

func (s Summary) String() string {
	lines := make([]string, len(s.Sinks))
	for i, k := range s.Sinks {
		lines[i] = k.String()
	}
	return strings.Join(lines, "\n")
}

// Summarizer is a Tracker that can say what it delivered. Every tracker of
// this module implements it; Summarize asks any Tracker.
type Summarizer interface {
	Summary() Summary
}

// Summarize returns t's summary, or an empty one when t cannot say.
func Summarize(t Tracker) Summary {
	if s, ok := t.(Summarizer); ok {
		return s.Summary()
	}
	return Summary{}
}

// Nop is a Tracker that records nothing.
type Nop struct{}

// LogParams does nothing.
func (Nop) LogParams(map[string]string) error { return nil }

// LogMetrics does nothing.
func (Nop) LogMetrics(int64, map[string]float64, time.Time) error { return nil }

// SetTags does nothing.
func (Nop) SetTags(map[string]string) error { return nil }

// LogArtifact does nothing.
func (Nop) LogArtifact(string, string) error { return nil }

// Finish does nothing.
func (Nop) Finish(Status) error { return nil }
