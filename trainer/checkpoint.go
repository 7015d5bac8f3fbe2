package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/optim"
)

// checkpointPrefix names checkpoint directories: checkpoint-<step>.
const checkpointPrefix = "checkpoint-"

// checkpointDir is the directory of the checkpoint at step.
func (r *Run) checkpointDir(step int) string {
	return r.outputPath(fmt.Sprintf("%s%d", checkpointPrefix, step))
}

// trainerState is trainer_state.json: where a run stood at a checkpoint.
type trainerState struct {
	Step       int         `json:"step"`
	TotalSteps int         `json:"total_steps"`
	Data       *data.State `json:"data_state"`
	// Recipe is the resolved recipe, so that a resume with a different
	// one is caught.
	Recipe string `json:"recipe"`
}

// saveCheckpoint writes checkpoint-<step> into the output directory: the
// trained weights, the optimiser state and trainer_state.json. It writes
// into a temporary directory and renames it, so a checkpoint is complete or
// absent; then it deletes all but the newest save_total_limit ones.
func (r *Run) saveCheckpoint() (string, error) {
	final := r.checkpointDir(r.step)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := r.Train.Save(tmp); err != nil {
		return "", fmt.Errorf("checkpoint at step %d: %w", r.step, err)
	}
	if err := optim.SaveState(filepath.Join(tmp, "optimizer.safetensors"), r.Opt); err != nil {
		return "", fmt.Errorf("checkpoint at step %d: %w", r.step, err)
	}
	recipe, err := r.Recipe.fingerprint()
	if err != nil {
		return "", err
	}
	st := trainerState{Step: r.step, TotalSteps: r.totalSteps, Data: r.dataState, Recipe: recipe}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, "trainer_state.json"), js); err != nil {
		return "", err
	}
	if err := os.RemoveAll(final); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("checkpoint at step %d: %w", r.step, err)
	}
	syncDir(r.Recipe.OutputDir)
	if err := r.pruneCheckpoints(); err != nil {
		return "", err
	}
	return final, nil
}

// writeFileSync writes a file and flushes it to disk.
func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// checkpoints lists the complete checkpoints of dir by step, oldest first.
func checkpoints(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, checkpointPrefix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(name, checkpointPrefix))
		if err != nil {
			continue // checkpoint-12.tmp and the like: incomplete
		}
		if _, err := os.Stat(filepath.Join(dir, name, "trainer_state.json")); err == nil {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// pruneCheckpoints deletes all but the newest SaveTotalLimit checkpoints
// (none when the limit is 0).
func (r *Run) pruneCheckpoints() error {
	if r.Recipe.SaveTotalLimit <= 0 {
		return nil
	}
	steps, err := checkpoints(r.Recipe.OutputDir)
	if err != nil {
		return err
	}
	for len(steps) > r.Recipe.SaveTotalLimit {
		if err := os.RemoveAll(r.checkpointDir(steps[0])); err != nil {
			return err
		}
		steps = steps[1:]
	}
	return nil
}

// resume restores the newest complete checkpoint of the output directory,
// if there is one, and reports the step it resumed at (0 when none).
func (r *Run) resume() (int, error) {
	steps, err := checkpoints(r.Recipe.OutputDir)
	if err != nil || len(steps) == 0 {
		return 0, err
	}
	dir := r.checkpointDir(steps[len(steps)-1])
	raw, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil {
		return 0, err
	}
	var st trainerState
	if err := json.Unmarshal(raw, &st); err != nil {
		return 0, fmt.Errorf("resume from %s: %w", dir, err)
	}
	recipe, err := r.Recipe.fingerprint()
	if err != nil {
		return 0, err
	}
	if st.Recipe != recipe {
		return 0, fmt.Errorf("resume from %s: the checkpoint was made with a different recipe; use a new output_dir, or delete the checkpoints to start over", dir)
	}
	if err := r.Train.Load(dir); err != nil {
		return 0, fmt.Errorf("resume from %s: %w", dir, err)
	}
	if err := optim.LoadState(filepath.Join(dir, "optimizer.safetensors"), r.Opt); err != nil {
		return 0, fmt.Errorf("resume from %s: %w", dir, err)
	}
	r.step, r.dataState = st.Step, st.Data
	return st.Step, nil
}

// fingerprint identifies what a checkpoint's numbers depend on: the recipe
// without the keys that only say how often to log, evaluate or save.
func (r *Recipe) fingerprint() (string, error) {
	c := *r
	c.LoggingSteps, c.EvalSteps, c.SaveSteps, c.SaveTotalLimit = 0, 0, 0, 0
	js, err := json.Marshal(c)
	return string(js), err
}
