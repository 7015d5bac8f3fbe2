package mlflowfile

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/whet-ai/whet/tracking"
)

// The names MLflow's FileStore gives its folders and files.
const (
	metaFile        = "meta.yaml"
	metricsDir      = "metrics"
	paramsDir       = "params"
	tagsDir         = "tags"
	artifactsDir    = "artifacts"
	trashDir        = ".trash"
	modelsDir       = "models" // the model registry's folder in the same root
	defaultExpID    = "0"
	defaultExpName  = "Default"
	lifecycleActive = "active"
	// DefaultRoot is where MLflow keeps runs when no tracking URI is set.
	DefaultRoot = "mlruns"
)

// RunStatus values as MLflow's FileStore writes them in meta.yaml
// (mlflow/protos/service.proto, RunStatus).
var statusCodes = map[string]int64{"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}

func statusName(code int64) string {
	for k, v := range statusCodes {
		if v == code {
			return k
		}
	}
	return fmt.Sprintf("UNKNOWN(%d)", code)
}

// Options configure a run in a local MLflow tracking directory.
type Options struct {
	// Root is the tracking directory (MLflow's ./mlruns); "" means
	// DefaultRoot in the working directory.
	Root string
	// Experiment is the experiment's name, created when missing; ""
	// means MLflow's "Default" experiment, id 0.
	Experiment string
	// RunID, when set, resumes that run (it must exist under Root)
	// instead of creating one.
	RunID string
	// RunName names a new run; "" gives tracking.DefaultRunName.
	RunName string
	// Tags are set on a new run, over the system tags of tracking.RunTags.
	Tags map[string]string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run writes one run into a local MLflow tracking directory, laid out as
// MLflow's FileStore lays it out, so that `mlflow ui --backend-store-uri
// ROOT` shows it (MLflow 3.13 and later need MLFLOW_ALLOW_FILE_STORE=true
// to open a file store; see the package documentation).
type Run struct {
	mu        sync.Mutex
	root      string
	expID     string
	id        string
	dir       string
	info      runInfo
	now       func() time.Time
	finished  bool
	delivered tracking.Counts
	lastErr   string
}

// runInfo is what meta.yaml of a run holds.
type runInfo struct {
	ArtifactURI string
	EndTime     *int64
	ExpID       string
	RunID       string
	RunName     string
	StartTime   int64
	Status      int64
	UserID      string
	Lifecycle   string
}

// Create opens the tracking directory (creating it, with the Default
// experiment, when missing, as MLflow does), finds or creates the
// experiment, and creates or resumes the run.
func Create(opts Options) (*Run, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	root := opts.Root
	if root == "" {
		root = DefaultRoot
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("mlflow file store %s: %w", root, err)
	}
	root = abs
	if err := ensureRoot(root, now); err != nil {
		return nil, err
	}
	r := &Run{root: root, now: now}
	if opts.RunID != "" {
		if err := r.resume(opts.RunID); err != nil {
			return nil, err
		}
		return r, nil
	}
	name := opts.Experiment
	if name == "" {
		name = defaultExpName
	}
	expID, err := experimentByName(root, name, now)
	if err != nil {
		return nil, err
	}
	if err := r.create(expID, opts); err != nil {
		return nil, err
	}
	return r, nil
}

// ensureRoot creates root with the Default experiment and the .trash
// folder when root does not exist, and the .trash folder when missing.
func ensureRoot(root string, now func() time.Time) error {
	st, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(root, 0o755); err != nil {
			return fmt.Errorf("mlflow file store: create %s: %w", root, err)
		}
		if err := writeExperiment(root, defaultExpID, defaultExpName, now); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("mlflow file store %s: %w", root, err)
	case !st.IsDir():
		return fmt.Errorf("mlflow file store %s: not a directory", root)
	}
	if err := os.MkdirAll(filepath.Join(root, trashDir), 0o755); err != nil {
		return fmt.Errorf("mlflow file store: create %s: %w", filepath.Join(root, trashDir), err)
	}
	return nil
}

// fileURI is pathlib.Path(p).as_uri(): file:// and the absolute path,
// percent-encoded.
func fileURI(p string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(p)}
	s := u.String()
	if !strings.HasPrefix(s, "file:///") { // url.URL writes file:/// only with a host part
		s = "file://" + strings.TrimPrefix(s, "file:")
	}
	return s
}

func writeExperiment(root, id, name string, now func() time.Time) error {
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mlflow file store: create experiment %q: %w", name, err)
	}
	t := now().UnixMilli()
	meta := yamlDump([]yamlEntry{
		{"artifact_location", fileURI(dir)},
		{"creation_time", t},
		{"experiment_id", id},
		{"last_update_time", t},
		{"lifecycle_stage", lifecycleActive},
		{"name", name},
	})
	return writeFileAtomic(filepath.Join(dir, metaFile), meta)
}

// experimentByName returns the id of the active experiment called name,
// creating it (with a random 63-bit id, as MLflow does) when none is.
func experimentByName(root, name string, now func() time.Time) (string, error) {
	exps, err := listExperiments(root)
	if err != nil {
		return "", err
	}
	for _, e := range exps {
		if e.Name == name {
			if e.Lifecycle != "" && e.Lifecycle != lifecycleActive {
				return "", fmt.Errorf("mlflow file store %s: experiment %q (id %s) is %s; restore it or choose another name", root, name, e.ID, e.Lifecycle)
			}
			return e.ID, nil
		}
	}
	id := defaultExpID
	if name != defaultExpName || exists(filepath.Join(root, defaultExpID)) {
		for {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return "", fmt.Errorf("mlflow file store: experiment id: %w", err)
			}
			n := binary.LittleEndian.Uint64(b[:]) & (1<<63 - 1)
			id = fmt.Sprint(n)
			if !exists(filepath.Join(root, id)) && !exists(filepath.Join(root, trashDir, id)) {
				break
			}
		}
	}
	if err := writeExperiment(root, id, name, now); err != nil {
		return "", err
	}
	return id, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Experiment is an experiment of a tracking directory.
type Experiment struct {
	ID, Name, ArtifactLocation, Lifecycle string
	Dir                                   string
}

// listExperiments reads the meta.yaml of every active experiment.
func listExperiments(root string) ([]Experiment, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("mlflow file store: %w", err)
	}
	var out []Experiment
	for _, e := range ents {
		if !e.IsDir() || e.Name() == trashDir || e.Name() == modelsDir {
			continue
		}
		exp, err := ReadExperiment(filepath.Join(root, e.Name()))
		if err != nil {
			continue // MLflow skips a malformed experiment too
		}
		out = append(out, *exp)
	}
	return out, nil
}

// newRunID is uuid.uuid4().hex: 32 hex digits of a random version-4 UUID.
func newRunID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mlflow file store: run id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}

func (r *Run) create(expID string, opts Options) error {
	id, err := newRunID()
	if err != nil {
		return err
	}
	start := r.now()
	name := opts.RunName
	if name == "" {
		name = opts.Tags[tracking.TagRunName]
	}
	if name == "" {
		name = tracking.DefaultRunName(start)
	}
	tags := tracking.RunTags(name, opts.Tags)
	tags[tracking.TagRunName] = name
	r.expID, r.id = expID, id
	r.dir = filepath.Join(r.root, expID, id)
	r.info = runInfo{
		ArtifactURI: fileURI(filepath.Join(r.dir, artifactsDir)),
		ExpID:       expID,
		RunID:       id,
		RunName:     name,
		StartTime:   start.UnixMilli(),
		Status:      statusCodes["RUNNING"],
		UserID:      tags[tracking.TagUser],
		Lifecycle:   lifecycleActive,
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("mlflow file store: create run: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(r.dir, metaFile), r.info.yaml(true)); err != nil {
		return err
	}
	for _, d := range []string{metricsDir, paramsDir, artifactsDir} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			return fmt.Errorf("mlflow file store: create run: %w", err)
		}
	}
	return r.writeTags(tags)
}

// yaml is the run's meta.yaml as FileStore writes it: at creation with
// deleted_time: null, later (_overwrite_run_info) without it.
func (i runInfo) yaml(created bool) []byte {
	var end any
	if i.EndTime != nil {
		end = *i.EndTime
	}
	entries := []yamlEntry{{"artifact_uri", i.ArtifactURI}}
	if created {
		entries = append(entries, yamlEntry{"deleted_time", nil})
	}
	entries = append(entries,
		yamlEntry{"end_time", end},
		yamlEntry{"entry_point_name", ""},
		yamlEntry{"experiment_id", i.ExpID},
		yamlEntry{"lifecycle_stage", i.Lifecycle},
		yamlEntry{"run_id", i.RunID},
		yamlEntry{"run_name", i.RunName},
		yamlEntry{"run_uuid", i.RunID},
		yamlEntry{"source_name", ""},
		yamlEntry{"source_type", int64(4)}, // SourceType.LOCAL
		yamlEntry{"source_version", ""},
		yamlEntry{"start_time", i.StartTime},
		yamlEntry{"status", i.Status},
		yamlEntry{"tags", []string{}},
		yamlEntry{"user_id", i.UserID},
	)
	return yamlDump(entries)
}

// resume finds run id under the root and marks it RUNNING again, as
// mlflow.start_run(run_id=...) does.
func (r *Run) resume(id string) error {
	exps, err := listExperiments(r.root)
	if err != nil {
		return err
	}
	for _, e := range exps {
		dir := filepath.Join(e.Dir, id)
		if !exists(filepath.Join(dir, metaFile)) {
			continue
		}
		data, err := ReadRun(dir)
		if err != nil {
			return err
		}
		r.expID, r.id, r.dir = e.ID, id, dir
		r.info = runInfo{
			ArtifactURI: data.ArtifactURI, ExpID: e.ID, RunID: id, RunName: data.RunName,
			StartTime: data.StartTime, Status: statusCodes["RUNNING"], UserID: data.UserID, Lifecycle: data.Lifecycle,
		}
		if data.EndTime != 0 {
			end := data.EndTime
			r.info.EndTime = &end
		}
		if r.info.Lifecycle == "" {
			r.info.Lifecycle = lifecycleActive
		}
		if r.info.Lifecycle != lifecycleActive {
			return fmt.Errorf("mlflow file store: run %s is %s; restore it before resuming", id, r.info.Lifecycle)
		}
		return writeFileAtomic(filepath.Join(dir, metaFile), r.info.yaml(false))
	}
	return fmt.Errorf("mlflow file store %s: no run %s (MLFLOW_RUN_ID)", r.root, id)
}

// ID is the run's id.
func (r *Run) ID() string { return r.id }

// ExperimentID is the id of the run's experiment.
func (r *Run) ExperimentID() string { return r.expID }

// Dir is the run's directory, ROOT/<experiment id>/<run id>.
func (r *Run) Dir() string { return r.dir }

// Root is the tracking directory.
func (r *Run) Root() string { return r.root }

// Name names the sink in errors.
func (r *Run) Name() string { return "mlflow-file " + r.dir }

func (r *Run) fail(err error) error {
	r.lastErr = err.Error()
	return err
}

// resourcePath is where FileStore keeps key under kind: a key with
// slashes makes subdirectories.
func (r *Run) resourcePath(kind, key string) string {
	return filepath.Join(r.dir, kind, filepath.FromSlash(key))
}

// LogParams writes each parameter to params/<key>. As in MLflow, a value
// cannot change: logging a different value under a logged key is an
// error (the other parameters are still written).
func (r *Run) LogParams(params map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.fail(errors.New("run is finished"))
	}
	var errs []error
	for _, k := range sortedKeys(params) {
		key := tracking.SanitizeKey(k)
		val := tracking.TruncateValue(params[k], tracking.MaxParamValueLength)
		p := r.resourcePath(paramsDir, key)
		if old, err := os.ReadFile(p); err == nil {
			if string(old) != val {
				errs = append(errs, fmt.Errorf("param %q was logged as %q; a param cannot change (new value %q)", key, old, val))
			}
			continue
		}
		if err := writeFile(p, []byte(val)); err != nil {
			errs = append(errs, err)
			continue
		}
		r.delivered.Params++
	}
	if err := errors.Join(errs...); err != nil {
		return r.fail(err)
	}
	return nil
}

// LogMetrics appends "<timestamp ms> <value> <step>" to metrics/<key>.
func (r *Run) LogMetrics(step int64, metrics map[string]float64, t time.Time) error {
	ts := tracking.Millis(t)
	pts := make([]tracking.Metric, 0, len(metrics))
	for _, k := range sortedKeys(metrics) {
		pts = append(pts, tracking.Metric{Key: k, Value: metrics[k], Timestamp: ts, Step: step})
	}
	return r.LogMetricPoints(pts)
}

// LogMetricPoints appends metric points, each with its own step and
// timestamp.
func (r *Run) LogMetricPoints(pts []tracking.Metric) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.fail(errors.New("run is finished"))
	}
	var lines = map[string]*strings.Builder{}
	var order []string
	for _, m := range pts {
		key := tracking.SanitizeKey(m.Key)
		b := lines[key]
		if b == nil {
			b = &strings.Builder{}
			lines[key] = b
			order = append(order, key)
		}
		fmt.Fprintf(b, "%d %s %d\n", max(m.Timestamp, 0), PyFloat(m.Value), m.Step)
	}
	var errs []error
	for _, key := range order {
		if err := appendFile(r.resourcePath(metricsDir, key), lines[key].String()); err != nil {
			errs = append(errs, err)
			continue
		}
		r.delivered.Metrics += int64(strings.Count(lines[key].String(), "\n"))
	}
	if err := errors.Join(errs...); err != nil {
		return r.fail(err)
	}
	return nil
}

// SetTags writes each tag to tags/<key>; setting mlflow.runName renames
// the run in meta.yaml too, as FileStore does.
func (r *Run) SetTags(tags map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.fail(errors.New("run is finished"))
	}
	if err := r.writeTags(tags); err != nil {
		return r.fail(err)
	}
	return nil
}

func (r *Run) writeTags(tags map[string]string) error {
	var errs []error
	for _, k := range sortedKeys(tags) {
		key := tracking.SanitizeKey(k)
		val := tracking.TruncateValue(tags[k], tracking.MaxTagValueLength)
		if err := writeFile(r.resourcePath(tagsDir, key), []byte(val)); err != nil {
			errs = append(errs, err)
			continue
		}
		r.delivered.Tags++
		if key == tracking.TagRunName && val != r.info.RunName {
			r.info.RunName = val
			if err := writeFileAtomic(filepath.Join(r.dir, metaFile), r.info.yaml(false)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// LogArtifact copies a file to artifacts/<artifactPath>/<base name>, or a
// directory's contents into artifacts/<artifactPath>.
func (r *Run) LogArtifact(localPath, artifactPath string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.fail(errors.New("run is finished"))
	}
	if _, err := CopyArtifact(localPath, filepath.Join(r.dir, artifactsDir), artifactPath); err != nil {
		return r.fail(err)
	}
	r.delivered.Artifacts++
	return nil
}

// CheckArtifactPath refuses an artifact path that is absolute or leaves
// the artifact root.
func CheckArtifactPath(p string) error {
	if p == "" {
		return nil
	}
	c := path.Clean(p)
	if path.IsAbs(p) || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(p, "\\") {
		return fmt.Errorf("artifact path %q: want a relative path inside the run's artifacts", p)
	}
	return nil
}

// CopyArtifact copies the file or directory localPath into the artifact
// directory dest under artifactPath (a file keeps its base name, a
// directory's contents are copied), returning the number of files copied.
func CopyArtifact(localPath, dest, artifactPath string) (int64, error) {
	if err := CheckArtifactPath(artifactPath); err != nil {
		return 0, err
	}
	st, err := os.Stat(localPath)
	if err != nil {
		return 0, fmt.Errorf("artifact: %w", err)
	}
	base := filepath.Join(dest, filepath.FromSlash(path.Clean("/" + artifactPath)[1:]))
	if !st.IsDir() {
		if err := copyFile(localPath, filepath.Join(base, filepath.Base(localPath))); err != nil {
			return 0, err
		}
		return 1, nil
	}
	var n int64
	err = filepath.WalkDir(localPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(localPath, p)
		if err != nil {
			return err
		}
		if err := copyFile(p, filepath.Join(base, rel)); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("artifact %s: %w", localPath, err)
	}
	return n, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("artifact: copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	return nil
}

// Finish records the status and end time in meta.yaml.
func (r *Run) Finish(status tracking.Status) error {
	if !status.Valid() {
		return fmt.Errorf("finish run: invalid status %q", status)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return nil
	}
	end := r.now().UnixMilli()
	r.info.EndTime = &end
	r.info.Status = statusCodes[string(status)]
	if err := writeFileAtomic(filepath.Join(r.dir, metaFile), r.info.yaml(false)); err != nil {
		return r.fail(err)
	}
	r.finished = true
	return nil
}

// Summary says what was written.
func (r *Run) Summary() tracking.Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return tracking.Summary{Sinks: []tracking.SinkSummary{{
		Sink: "mlflow-file", Target: r.dir, Delivered: r.delivered, LastError: r.lastErr,
	}}}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	return nil
}

func appendFile(p, data string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("mlflow file store: append %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	return nil
}

// writeFileAtomic replaces p through a temporary file, so that a reader
// (mlflow ui) never sees half a meta.yaml.
func writeFileAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".meta-*.tmp")
	if err != nil {
		return fmt.Errorf("mlflow file store: %w", err)
	}
	name := tmp.Name()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("mlflow file store: write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("mlflow file store: write %s: %w", p, err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return fmt.Errorf("mlflow file store: %w", err)
	}
	if err := os.Rename(name, p); err != nil {
		os.Remove(name)
		return fmt.Errorf("mlflow file store: %w", err)
	}
	return nil
}
