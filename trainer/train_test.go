package trainer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/quickstart"
	"github.com/whet-ai/whet/trainer"
)

// childEnv makes the test binary run one training (the recipe at its
// value, with --resume) instead of the tests: the resume test kills such
// children.
const childEnv = "WHET_TRAINER_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		rc, err := trainer.LoadRecipe(path)
		if err == nil {
			var run *trainer.Run
			if run, err = trainer.New(rc, trainer.Options{Out: os.Stdout, Resume: true}); err == nil {
				_, err = run.Fit(context.Background())
				run.Close()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// quickRecipe is the built-in example, shortened, with dropout on so that
// resuming must restore its masks too, and frequent evaluation and
// checkpoints.
func quickRecipe(t *testing.T, dir string) *trainer.Recipe {
	t.Helper()
	rc, err := quickstart.Build(dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	rc.Epochs = 6
	rc.LoRA.Dropout = 0.1
	rc.Data.EvalFraction = 0.1
	rc.EvalSteps, rc.SaveSteps, rc.SaveTotalLimit = 4, 3, 2
	rc.GradientAccumulationSteps = 2
	rc.LoggingSteps = 0
	return rc
}

func fit(t *testing.T, rc *trainer.Recipe, resume bool) *trainer.Result {
	t.Helper()
	run, err := trainer.New(rc, trainer.Options{Resume: resume})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	res, err := run.Fit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readAdapter(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeedReproducible: the same recipe twice gives the same adapter, byte
// for byte. (The data order depends on the files' names, so both runs read
// the same files.)
func TestSeedReproducible(t *testing.T) {
	var got [2][]byte
	dir := t.TempDir()
	for i := range got {
		rc := quickRecipe(t, dir)
		rc.Epochs = 1
		os.RemoveAll(rc.OutputDir)
		fit(t, rc, false)
		got[i] = readAdapter(t, rc.OutputDir)
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Error("two runs of one recipe gave different adapters")
	}
}

// TestResumeAfterKill kills a training process with SIGKILL at random
// moments, resumes it each time, and checks that the final adapter equals
// an uninterrupted run's byte for byte. A checkpoint left half-written is
// ignored on resume.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the kill-and-resume test in -short mode")
	}
	dir := t.TempDir()
	start := time.Now()
	want := func() []byte {
		rc := quickRecipe(t, dir)
		fit(t, rc, false)
		return readAdapter(t, rc.OutputDir)
	}()
	took := time.Since(start)
	rc := quickRecipe(t, dir)
	os.RemoveAll(rc.OutputDir)
	y, err := rc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(recipe, y, 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt > 40 {
			t.Fatal("training did not finish after 40 attempts")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+recipe)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if kills < 4 {
			// Kill somewhere in the run: start-up, a step, an evaluation
			// or a checkpoint write.
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("child failed: %v\n%s", err, out.String())
				}
				goto finished
			case <-time.After(time.Duration(float64(took) * (0.1 + 0.5*rng.Float64()))):
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				kills++
				// Leave a half-written checkpoint behind, as a kill during
				// a write would.
				if kills == 2 {
					tmp := filepath.Join(rc.OutputDir, "checkpoint-999.tmp")
					os.MkdirAll(tmp, 0o755)
					os.WriteFile(filepath.Join(tmp, "optimizer.safetensors"), []byte("trunc"), 0o644)
				}
				continue
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		break
	}
finished:
	if got := readAdapter(t, rc.OutputDir); !bytes.Equal(got, want) {
		t.Errorf("after %d kills and resumes the adapter differs from an uninterrupted run's", kills)
	}
	t.Logf("%d kills", kills)
}

// TestLoRAOnStories fine-tunes the real pretrained stories260K model on
// stories about a new character: the evaluation loss falls, and the
// adapter's greedy continuation tells the new story.
func TestLoRAOnStories(t *testing.T) {
	model := filepath.Join("..", "..", "shared", "models", "stories260K.gguf")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("skipping: the shared model %s is absent", model)
	}
	dir := t.TempDir()
	var lines []string
	for i := range 60 {
		food := []string{"blue cheese", "red apples", "warm soup"}[i%3]
		js, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("Once upon a time, there was a dragon named Zorb. Zorb loved to eat %s.", food)})
		lines = append(lines, string(js))
	}
	data := filepath.Join(dir, "zorb.jsonl")
	os.WriteFile(data, []byte(strings.Join(lines, "\n")), 0o644)
	rc := trainer.DefaultRecipe()
	rc.Model = model
	rc.Data.Files = []string{data}
	rc.Data.Format = "text"
	rc.Data.SequenceLen = 64
	rc.Data.EvalFraction = 0.2
	rc.LoRA.R, rc.LoRA.Alpha, rc.LoRA.Dropout = 8, 16, 0
	rc.Optimizer.LR = 1e-2
	rc.Epochs = 4
	rc.MicroBatchSize = 4
	rc.EvalSteps = 5
	rc.OutputDir = filepath.Join(dir, "out")
	run, err := trainer.New(&rc, trainer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	before, _, err := run.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Fit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval loss %.3f before, %.3f after %d steps", before, res.EvalLoss, res.Steps)
	if !(res.EvalLoss < before-1) {
		t.Errorf("eval loss did not fall: %.3f before, %.3f after", before, res.EvalLoss)
	}
	// Greedy decoding with the trained adapter names the new character.
	run.Train.SetTraining(false)
	tok := run.Loaded.Tokenizer
	ids := tok.Encode("Once upon a time, there was a dragon named", true)
	out, err := models.Generate(run.Backend, run.Loaded.Model, ids, models.GenerateOptions{MaxNewTokens: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if text := tok.Decode(out, true); !strings.Contains(text, "Zorb") {
		t.Errorf("after training, the model continues with %q, not the new character", text)
	} else {
		t.Logf("continuation: %q", text)
	}
}

// TestNaNPolicy: a diverging run stops with an error naming the step, or,
// with nan_policy: skip, skips the bad steps and finishes.
func TestNaNPolicy(t *testing.T) {
	for _, policy := range []string{"stop", "skip"} {
		rc := quickRecipe(t, t.TempDir())
		rc.Epochs, rc.EvalSteps, rc.SaveSteps = 1, 0, 0
		rc.Data.EvalFraction = 0
		rc.Optimizer.LR, rc.MaxGradNorm = 1e30, 0
		rc.Schedule.Name, rc.Schedule.WarmupSteps, rc.Schedule.WarmupRatio = "constant", 0, 0
		rc.NaNPolicy = policy
		run, err := trainer.New(rc, trainer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = run.Fit(context.Background())
		run.Close()
		switch policy {
		case "stop":
			if err == nil || !strings.Contains(err.Error(), "not finite") || !strings.Contains(err.Error(), "step ") {
				t.Errorf("stop: error %v, want one naming the step and the non-finite loss", err)
			}
		case "skip":
			if err != nil {
				t.Errorf("skip: %v", err)
			}
		}
	}
}

// TestInitAdapter: training can start from a saved adapter: its first loss
// is the loss the earlier run ended at.
func TestInitAdapter(t *testing.T) {
	dir := t.TempDir()
	rc := quickRecipe(t, dir)
	rc.Epochs, rc.LoRA.Dropout = 2, 0
	first := fit(t, rc, false)
	rc2 := quickRecipe(t, dir)
	rc2.LoRA.Dropout = 0
	rc2.InitAdapter = rc.OutputDir
	rc2.OutputDir = filepath.Join(dir, "second")
	run, err := trainer.New(rc2, trainer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	loss, _, err := run.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if d := loss - first.EvalLoss; d > 1e-6 || d < -1e-6 {
		t.Errorf("eval loss from the saved adapter %.6f, the first run ended at %.6f", loss, first.EvalLoss)
	}
}

// TestMemoryRefusal: a run that needs more memory than allowed is refused
// before it starts, with the estimate.
func TestMemoryRefusal(t *testing.T) {
	rc := quickRecipe(t, t.TempDir())
	rc.MemoryLimitGB = 1e-6
	_, err := trainer.New(rc, trainer.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not fit") || !strings.Contains(err.Error(), "needs about") {
		t.Errorf("error %v, want a refusal with the estimate", err)
	}
}

// TestAdamW8bitMatches: a short full fine-tuning run with 8-bit AdamW (its
// large tensors get 8-bit moments) ends within 1% of the eval loss of
// 32-bit AdamW.
func TestAdamW8bitMatches(t *testing.T) {
	dir := t.TempDir()
	var losses [2]float64
	for i, name := range []string{"adamw", "adamw8bit"} {
		rc := quickRecipe(t, dir)
		rc.Method, rc.LoRA.Dropout = "full", 0
		rc.Optimizer.Name, rc.Optimizer.LR = name, 2e-3
		rc.Epochs, rc.EvalSteps, rc.SaveSteps = 3, 0, 0
		rc.OutputDir = filepath.Join(dir, name)
		res := fit(t, rc, false)
		losses[i] = res.EvalLoss
	}
	t.Logf("eval loss: AdamW %.5f, AdamW8bit %.5f", losses[0], losses[1])
	if d := (losses[1] - losses[0]) / losses[0]; d > 0.01 || d < -0.01 {
		t.Errorf("8-bit AdamW's eval loss %.5f is %.2f%% from 32-bit AdamW's %.5f", losses[1], 100*d, losses[0])
	}
}

// storiesData writes a dataset of short stories about new characters, with
// enough variety that the eval loss stays well above zero.
func storiesData(t *testing.T, dir string) string {
	t.Helper()
	names := []string{"Zorb", "Pip", "Mila", "Toto", "Fen", "Lux", "Bram", "Suki"}
	foods := []string{"blue cheese", "red apples", "warm soup", "sweet cake", "green peas", "hot bread"}
	places := []string{"the park", "the forest", "the big lake", "the old barn", "the garden"}
	rng := rand.New(rand.NewPCG(5, 5))
	var lines []string
	for range 160 {
		n, f, p := names[rng.IntN(len(names))], foods[rng.IntN(len(foods))], places[rng.IntN(len(places))]
		js, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("Once upon a time, there was a dragon named %s. %s loved to eat %s in %s. One day, %s found a shiny stone.", n, n, f, p, n)})
		lines = append(lines, string(js))
	}
	path := filepath.Join(dir, "stories.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestQLoRAOnStories: QLoRA (NF4 base, double quantisation) on the real
// stories260K model reaches an eval loss within 2% of LoRA on the
// unquantised base, with the same data and steps.
func TestQLoRAOnStories(t *testing.T) {
	model := filepath.Join("..", "..", "shared", "models", "stories260K.gguf")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("skipping: the shared model %s is absent", model)
	}
	dir := t.TempDir()
	data := storiesData(t, dir)
	var losses [2]float64
	for i, q := range []string{"none", "nf4"} {
		rc := trainer.DefaultRecipe()
		rc.Model = model
		rc.Data.Files = []string{data}
		rc.Data.Format = "text"
		rc.Data.SequenceLen = 128
		rc.Data.EvalFraction = 0.15
		rc.Quantization.Type, rc.Quantization.DoubleQuant = q, q != "none"
		rc.LoRA.R, rc.LoRA.Alpha, rc.LoRA.Dropout = 8, 16, 0
		rc.Optimizer.LR = 5e-3
		rc.Epochs, rc.MicroBatchSize = 3, 4
		rc.OutputDir = filepath.Join(dir, q)
		run, err := trainer.New(&rc, trainer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		before, _, _ := run.Evaluate()
		res, err := run.Fit(context.Background())
		run.Close()
		if err != nil {
			t.Fatal(err)
		}
		losses[i] = res.EvalLoss
		t.Logf("%s: eval loss %.4f before, %.4f after %d steps", q, before, res.EvalLoss, res.Steps)
	}
	if d := (losses[1] - losses[0]) / losses[0]; d > 0.02 || d < -0.02 {
		t.Errorf("QLoRA eval loss %.4f is %.2f%% from LoRA's %.4f", losses[1], 100*d, losses[0])
	}
}
