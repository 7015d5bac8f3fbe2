package tracking

import (
	"errors"
	"fmt"
	"time"
)

// Named is implemented by trackers that have a name for error messages.
type Named interface {
	Name() string
}

// Multi returns a Tracker that hands every call to each of ts in turn. One
// sink's error (or panic) never keeps a call from the others: the errors
// are collected, each prefixed with its sink's name, and returned joined.
// Nil trackers are skipped.
func Multi(ts ...Tracker) Tracker {
	m := &multi{}
	for _, t := range ts {
		if t != nil {
			m.sinks = append(m.sinks, t)
		}
	}
	return m
}

type multi struct {
	sinks []Tracker
}

func sinkName(i int, t Tracker) string {
	if n, ok := t.(Named); ok {
		return n.Name()
	}
	return fmt.Sprintf("tracker %d (%T)", i, t)
}

// each calls f on every sink, turning a panic into an error.
func (m *multi) each(op string, f func(Tracker) error) error {
	var errs []error
	for i, t := range m.sinks {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return f(t)
		}()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", sinkName(i, t), op, err))
		}
	}
	return errors.Join(errs...)
}

func (m *multi) LogParams(p map[string]string) error {
	return m.each("log params", func(t Tracker) error { return t.LogParams(p) })
}

func (m *multi) LogMetrics(step int64, ms map[string]float64, ts time.Time) error {
	return m.each("log metrics", func(t Tracker) error { return t.LogMetrics(step, ms, ts) })
}

func (m *multi) SetTags(tags map[string]string) error {
	return m.each("set tags", func(t Tracker) error { return t.SetTags(tags) })
}

func (m *multi) LogArtifact(local, artifactPath string) error {
	return m.each("log artifact", func(t Tracker) error { return t.LogArtifact(local, artifactPath) })
}

func (m *multi) Finish(s Status) error {
	return m.each("finish", func(t Tracker) error { return t.Finish(s) })
}

// Summary concatenates the sinks' summaries.
func (m *multi) Summary() Summary {
	var s Summary
	for _, t := range m.sinks {
		s.Sinks = append(s.Sinks, Summarize(t).Sinks...)
	}
	return s
}
