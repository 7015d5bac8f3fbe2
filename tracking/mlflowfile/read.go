package mlflowfile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/whet-ai/whet/tracking"
)

// RunData is a run read back from a tracking directory.
type RunData struct {
	Dir            string // the run's directory
	RunID          string
	RunName        string
	ExperimentID   string
	ExperimentName string // "" when the experiment's meta.yaml is unreadable
	UserID         string
	Status         string // RUNNING, FINISHED, FAILED, KILLED, SCHEDULED
	Lifecycle      string
	StartTime      int64 // milliseconds since the Unix epoch
	EndTime        int64 // 0 while running
	ArtifactURI    string
	// ArtifactDir is the local directory holding the run's artifacts: the
	// artifact_uri's path when it is a file: URI that exists, else the
	// run's artifacts folder when it exists; "" when neither does.
	ArtifactDir string
	Params      map[string]string
	Tags        map[string]string
	// Metrics are every logged point, by key, in the order logged.
	Metrics []tracking.Metric
}

// readYAML reads a meta.yaml into a map.
func readYAML(p string) (map[string]any, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("mlflow file store: %w", err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("mlflow file store: %s: %w", p, err)
	}
	return m, nil
}

func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func integer(m map[string]any, k string) (int64, error) {
	switch v := m[k].(type) {
	case nil:
		return 0, nil
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint64:
		return int64(v), nil
	case float64:
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not an integer", k, v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%s: %v is not an integer", k, v)
	}
}

// ReadExperiment reads an experiment directory's meta.yaml.
func ReadExperiment(dir string) (*Experiment, error) {
	m, err := readYAML(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	e := &Experiment{
		ID: str(m, "experiment_id"), Name: str(m, "name"), ArtifactLocation: str(m, "artifact_location"),
		Lifecycle: str(m, "lifecycle_stage"), Dir: dir,
	}
	if e.ID == "" {
		return nil, fmt.Errorf("mlflow file store: %s: no experiment_id", filepath.Join(dir, metaFile))
	}
	return e, nil
}

// ReadRun reads a run directory (ROOT/<experiment id>/<run id>): its
// meta.yaml, params, tags and metrics, and where its artifacts are.
func ReadRun(dir string) (*RunData, error) {
	m, err := readYAML(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	rd := &RunData{
		Dir: dir, RunID: str(m, "run_id"), RunName: str(m, "run_name"), ExperimentID: str(m, "experiment_id"),
		UserID: str(m, "user_id"), Lifecycle: str(m, "lifecycle_stage"), ArtifactURI: str(m, "artifact_uri"),
	}
	if rd.RunID == "" {
		rd.RunID = str(m, "run_uuid")
	}
	if rd.RunID == "" {
		return nil, fmt.Errorf("mlflow file store: %s: no run_id", filepath.Join(dir, metaFile))
	}
	if rd.StartTime, err = integer(m, "start_time"); err != nil {
		return nil, fmt.Errorf("mlflow file store: %s: %w", filepath.Join(dir, metaFile), err)
	}
	if rd.EndTime, err = integer(m, "end_time"); err != nil {
		return nil, fmt.Errorf("mlflow file store: %s: %w", filepath.Join(dir, metaFile), err)
	}
	status := int64(1)
	if m["status"] != nil {
		if s, ok := m["status"].(string); ok {
			status = statusCodes[strings.ToUpper(s)]
		} else if status, err = integer(m, "status"); err != nil {
			return nil, fmt.Errorf("mlflow file store: %s: %w", filepath.Join(dir, metaFile), err)
		}
	}
	rd.Status = statusName(status)
	if exp, err := ReadExperiment(filepath.Dir(dir)); err == nil {
		rd.ExperimentName = exp.Name
	}
	if rd.Params, err = readValues(filepath.Join(dir, paramsDir)); err != nil {
		return nil, err
	}
	if rd.Tags, err = readValues(filepath.Join(dir, tagsDir)); err != nil {
		return nil, err
	}
	if rd.RunName == "" {
		rd.RunName = rd.Tags[tracking.TagRunName]
	}
	if rd.Metrics, err = readMetrics(filepath.Join(dir, metricsDir)); err != nil {
		return nil, err
	}
	if u, err := url.Parse(rd.ArtifactURI); err == nil && u.Scheme == "file" {
		if st, err := os.Stat(filepath.FromSlash(u.Path)); err == nil && st.IsDir() {
			rd.ArtifactDir = filepath.FromSlash(u.Path)
		}
	}
	if rd.ArtifactDir == "" {
		if st, err := os.Stat(filepath.Join(dir, artifactsDir)); err == nil && st.IsDir() {
			rd.ArtifactDir = filepath.Join(dir, artifactsDir)
		}
	}
	return rd, nil
}

// resourceFiles lists the files under dir as slash-separated keys.
func resourceFiles(dir string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mlflow file store: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

func readValues(dir string) (map[string]string, error) {
	keys, err := resourceFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if err != nil {
			return nil, fmt.Errorf("mlflow file store: %w", err)
		}
		out[k] = string(data)
	}
	return out, nil
}

func readMetrics(dir string) ([]tracking.Metric, error) {
	keys, err := resourceFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []tracking.Metric
	for _, k := range keys {
		p := filepath.Join(dir, filepath.FromSlash(k))
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("mlflow file store: %w", err)
		}
		sc := bufio.NewScanner(f)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			m, err := ParseMetricLine(k, text)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("mlflow file store: %s:%d: %w", p, line, err)
			}
			out = append(out, m)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("mlflow file store: %s: %w", p, err)
		}
	}
	return out, nil
}

// ParseMetricLine reads one line of a metric file, "<timestamp> <value>
// [<step>]", as FileStore does (a missing step is 0).
func ParseMetricLine(key, line string) (tracking.Metric, error) {
	parts := strings.Split(strings.TrimSpace(line), " ")
	if len(parts) != 2 && len(parts) != 3 {
		return tracking.Metric{}, fmt.Errorf("metric %q: line %q has %d fields, want 2 or 3", key, line, len(parts))
	}
	ts, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return tracking.Metric{}, fmt.Errorf("metric %q: timestamp %q: %w", key, parts[0], err)
	}
	v, err := strconv.ParseFloat(parts[1], 64)
	if err != nil {
		return tracking.Metric{}, fmt.Errorf("metric %q: value %q: %w", key, parts[1], err)
	}
	var step int64
	if len(parts) == 3 {
		if step, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
			return tracking.Metric{}, fmt.Errorf("metric %q: step %q: %w", key, parts[2], err)
		}
	}
	return tracking.Metric{Key: key, Value: v, Timestamp: ts, Step: step}, nil
}
