package trainer

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/quant"
	"github.com/whet-ai/whet/tokenizer/chat"
)

// Options are the choices of a run that are not in its recipe.
type Options struct {
	// Out receives progress lines (the terminal).
	Out io.Writer
	// Resume continues from the newest checkpoint in the output directory.
	Resume bool
	// Terminal shows a live progress bar on Out instead of log lines.
	Terminal bool
}

// New sets a run up from a recipe: it checks the recipe and its files,
// loads the model and the data, makes the adapter (or the full set of
// weights) trainable, builds the optimiser and schedule, estimates the
// memory the run needs, and, with opt.Resume, restores the newest
// checkpoint. Nothing is trained yet.
func New(rc *Recipe, opt Options) (*Run, error) {
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	if err := rc.CheckFiles(); err != nil {
		return nil, err
	}
	out := opt.Out
	if out == nil {
		out = io.Discard
	}
	b, err := backend.Default()
	if err != nil {
		return nil, err
	}
	l, err := models.Load(b, rc.Model, rc.Revision)
	if err != nil {
		return nil, err
	}
	if l.Tokenizer == nil {
		return nil, fmt.Errorf("%s has no tokenizer.json; whet needs it to read the data", l.Source)
	}
	if q := rc.Quantization; q.Type != "none" {
		kind, err := quant.ParseKind(q.Type)
		if err != nil {
			return nil, err
		}
		before := models.WeightBytes(l.Model)
		n, err := models.Quantize(b, l.Model, models.QuantOptions{Kind: kind, DoubleQuant: q.DoubleQuant, BlockSize: q.BlockSize, Outliers: q.OutlierThreshold})
		if err != nil {
			return nil, err
		}
		runtime.GC() // let the dense weights go
		fmt.Fprintf(out, "quantised %d linear layers to %s: weights %.1f MB -> %.1f MB\n", n, kind, float64(before)/1e6, float64(models.WeightBytes(l.Model))/1e6)
	}
	if rc.GradientCheckpointing {
		if c, ok := l.Model.(interface{ SetCheckpointing(bool) }); ok {
			c.SetCheckpointing(true)
		}
	}
	dm, err := DataModel(l, rc.Data.ChatTemplate)
	if err != nil {
		return nil, err
	}
	r := &Run{Recipe: rc, Backend: b, Loaded: l, Out: out, pool: autograd.NewPool(b), terminal: opt.Terminal}

	// The data, opened once for one epoch to count the steps an epoch
	// gives, then for the run.
	cfg := dataConfig(rc)
	cfg.Epochs = 1
	ds, err := data.Open(cfg, dm)
	if err != nil {
		return nil, err
	}
	batches, err := countBatches(ds)
	if err != nil {
		return nil, err
	}
	if batches == 0 {
		return nil, fmt.Errorf("data: no training examples left (check the format, sequence_len and train_on; `whet preview` shows what the data becomes)")
	}
	stepsPerEpoch := (batches + rc.GradientAccumulationSteps - 1) / rc.GradientAccumulationSteps
	r.totalSteps = stepsPerEpoch * rc.Epochs
	cfg.Epochs = rc.Epochs
	if rc.MaxSteps > 0 {
		r.totalSteps = rc.MaxSteps
		cfg.Epochs = (rc.MaxSteps + stepsPerEpoch - 1) / stepsPerEpoch
	}
	if r.Data, err = data.Open(cfg, dm); err != nil {
		return nil, err
	}

	if r.Train, err = newTrainable(b, l, rc); err != nil {
		return nil, err
	}
	if err := r.checkMemory(); err != nil {
		return nil, err
	}
	if r.Opt, err = newOptimizer(r.Train, rc); err != nil {
		return nil, err
	}
	warmup := rc.Schedule.WarmupSteps
	if warmup == 0 && rc.Schedule.WarmupRatio > 0 {
		warmup = int(math.Ceil(rc.Schedule.WarmupRatio * float64(r.totalSteps)))
	}
	r.Sched = optim.Schedule{Kind: rc.Schedule.Name, LR: rc.Optimizer.LR, Warmup: warmup, Total: r.totalSteps, MinLR: rc.Schedule.MinLR}
	if err := r.Sched.Validate(); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(rc.OutputDir, 0o755); err != nil {
		return nil, err
	}
	if opt.Resume {
		step, err := r.resume()
		if err != nil {
			return nil, err
		}
		if step > 0 {
			fmt.Fprintf(out, "resuming from step %d of %d\n", step, r.totalSteps)
		} else {
			fmt.Fprintf(out, "no checkpoint in %s; starting from the beginning\n", rc.OutputDir)
		}
	} else if steps, _ := checkpoints(rc.OutputDir); len(steps) > 0 {
		return nil, fmt.Errorf("%s already holds checkpoints (up to step %d): pass --resume to continue, or choose another output_dir", rc.OutputDir, steps[len(steps)-1])
	}
	if err := r.openMetrics(); err != nil {
		return nil, err
	}
	if err := r.openTrackers(); err != nil {
		return nil, err
	}
	if y, err := rc.YAML(); err == nil {
		os.WriteFile(filepath.Join(rc.OutputDir, "recipe.yaml"), y, 0o644)
	}
	return r, nil
}

// openMetrics opens metrics.jsonl, keeping only the lines of the steps up to
// the one the run starts at (a resumed run rewrites what came after its
// checkpoint).
func (r *Run) openMetrics() error {
	path := r.outputPath("metrics.jsonl")
	var keep []byte
	if r.step > 0 {
		keep = keptMetrics(path, r.step)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(keep); err != nil {
		f.Close()
		return err
	}
	r.metrics = f
	return nil
}

// Close closes the metrics file.
func (r *Run) Close() error {
	if r.metrics == nil {
		return nil
	}
	err := r.metrics.Close()
	r.metrics = nil
	return err
}

// DataModel is the data pipeline's view of the model: its tokenizer, and
// its chat template and special tokens when the model directory has them.
func DataModel(l *models.Loaded, template string) (*data.Model, error) {
	var tmpl *chat.Template
	var special chat.SpecialTokens
	if l.Dir != nil {
		t, s, err := chat.FromDir(l.Dir.Path(), template)
		switch {
		case err == nil:
			tmpl, special = t, s
		case errors.Is(err, chat.ErrNoTemplate):
			special = s
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	m, err := data.NewModel(l.Tokenizer, tmpl, special)
	if err != nil {
		return nil, err
	}
	m.Stop = l.Model.Config().EOSTokenIDs
	return m, nil
}

// dataConfig turns the recipe's data section into the pipeline's config.
func dataConfig(rc *Recipe) data.Config {
	d := rc.Data
	cfg := data.DefaultConfig(d.Files...)
	cfg.Format = data.Format(d.Format)
	cfg.Fields = d.Fields
	cfg.EvalFiles = d.EvalFiles
	cfg.EvalFraction = d.EvalFraction
	cfg.SequenceLen = d.SequenceLen
	cfg.Packing = d.Packing
	cfg.TrainOn = data.TrainOn(d.TrainOn)
	cfg.Truncation = data.Truncation(d.Truncation)
	cfg.PromptStyle = data.PromptStyle(d.PromptStyle)
	cfg.Shuffle = d.Shuffle
	cfg.SkipInvalid = d.SkipInvalid
	cfg.Seed = rc.Seed
	cfg.BatchSize = rc.MicroBatchSize
	return cfg
}

// countBatches reads one epoch of training batches and counts them.
func countBatches(ds *data.Dataset) (int, error) {
	it, err := ds.Train(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}

// newOptimizer builds the recipe's optimiser over the trainable parameters.
func newOptimizer(t Trainable, rc *Recipe) (optim.Optimizer, error) {
	o := rc.Optimizer
	groups := t.Groups(rc)
	switch o.Name {
	case "adamw":
		return optim.NewAdamW(t.Params(), o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay, groups)
	case "adamw8bit":
		return optim.NewAdamW8bit(t.Params(), o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay, groups)
	case "sgd":
		return optim.NewSGD(t.Params(), o.Momentum, 0, o.Nesterov, o.WeightDecay, groups)
	}
	return nil, fmt.Errorf("optimizer %q: want adamw, adamw8bit or sgd", o.Name)
}
