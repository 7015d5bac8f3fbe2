package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/plot"
	"github.com/whet-ai/whet/tracking/progress"
)

// Trainable is what a run trains: LoRA adapters on a frozen base, or every
// weight of the model. Its parameters live in one ParamSet.
type Trainable interface {
	// Params are the trainable tensors.
	Params() *optim.ParamSet
	// Groups gives each parameter group's settings for the optimiser.
	Groups(r *Recipe) map[string]optim.Group
	// SetStep seeds what is random in a step (LoRA dropout) from the step.
	SetStep(step uint64)
	// SetTraining turns training-only behaviour (dropout) on or off.
	SetTraining(on bool)
	// Save writes the trained weights to dir: a PEFT adapter, or a model
	// checkpoint.
	Save(dir string) error
	// Load reads weights that Save wrote back into the parameters.
	Load(dir string) error
}

// Run is one training run: a recipe, set up.
type Run struct {
	Recipe  *Recipe
	Backend backend.Backend
	Loaded  *models.Loaded
	Train   Trainable
	Data    *data.Dataset
	Opt     optim.Optimizer
	Sched   optim.Schedule

	// Out receives the progress lines; metrics is metrics.jsonl.
	Out     io.Writer
	metrics *os.File

	pool       *autograd.Pool
	step       int
	dataState  *data.State
	totalSteps int

	// tracker is the recipe's sinks (nil when only metrics.jsonl).
	tracker                  tracking.Tracker
	trainPts, evalPts, lrPts []plot.Point
	bar                      *progress.Bar
	terminal                 bool
}

// Result summarises a finished run.
type Result struct {
	Steps       int
	Tokens      int64
	FinalLoss   float64
	EvalLoss    float64 // NaN when there was no evaluation
	Elapsed     time.Duration
	AdapterDir  string
	Checkpoints []string
}

// stepBatches gathers the micro-batches of one optimiser step and counts
// their trained tokens, so that the loss is normalised by the tokens of the
// whole accumulation window.
func (r *Run) stepBatches(it *data.Iterator) ([]*data.Batch, int, error) {
	var bs []*data.Batch
	tokens := 0
	for range r.Recipe.GradientAccumulationSteps {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		bs = append(bs, b)
		tokens += b.TrainedTokens
	}
	return bs, tokens, nil
}

// Inputs moves a batch's ids, positions and segments to the back end.
func Inputs(b backend.Backend, bt *data.Batch) (models.Inputs, error) {
	ids, err := autograd.Int32s(b, bt.InputIDs, bt.B, bt.T)
	if err != nil {
		return models.Inputs{}, err
	}
	pos, err := autograd.Int32s(b, bt.PositionIDs, bt.B*bt.T)
	if err != nil {
		return models.Inputs{}, err
	}
	seg, err := autograd.Int32s(b, bt.Segments, bt.B, bt.T)
	if err != nil {
		return models.Inputs{}, err
	}
	return models.Inputs{IDs: ids, Positions: pos, Segments: seg}, nil
}

// microStep runs forward and backward on one micro-batch, adding its
// gradient (scaled by 1/windowTokens) to the parameter set, and returns its
// summed loss.
func (r *Run) microStep(bt *data.Batch, windowTokens int) (float64, error) {
	in, err := Inputs(r.Backend, bt)
	if err != nil {
		return 0, err
	}
	g := autograd.New(r.Backend, r.pool)
	defer g.Release()
	loss, n := r.Loaded.Model.Loss(g, in, bt.Labels)
	if g.Err() != nil {
		return 0, g.Err()
	}
	if n == 0 {
		return 0, nil
	}
	v, err := g.Value(loss)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v[0]) || math.IsInf(v[0], 0) {
		return v[0], nil
	}
	if err := g.Backward(loss, 1/float64(windowTokens)); err != nil {
		return 0, err
	}
	return v[0], nil
}

// Evaluate returns the mean loss per token over the evaluation data, and
// the number of tokens, with no gradients and dropout off.
func (r *Run) Evaluate() (float64, int, error) {
	it, err := r.Data.Eval()
	if errors.Is(err, data.ErrNoEval) {
		return math.NaN(), 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	r.Train.SetTraining(false)
	defer r.Train.SetTraining(true)
	ev, err := EvalLoss(r.Backend, r.pool, r.Loaded.Model, it)
	if err != nil {
		return 0, 0, err
	}
	return ev.Mean(), ev.Tokens, nil
}

// Eval is the summed loss of a model over a dataset.
type Eval struct {
	Sum      float64 // summed loss over the scored tokens
	Tokens   int     // scored (trained) tokens
	Examples int     // documents
}

// Mean is the loss per scored token, NaN when none was scored.
func (e Eval) Mean() float64 {
	if e.Tokens == 0 {
		return math.NaN()
	}
	return e.Sum / float64(e.Tokens)
}

// EvalLoss runs m over every batch of it with no gradients (the evaluation
// of a run, and whet eval).
func EvalLoss(b backend.Backend, pool *autograd.Pool, m models.Model, it *data.Iterator) (Eval, error) {
	var ev Eval
	for {
		bt, err := it.Next()
		if errors.Is(err, io.EOF) {
			return ev, nil
		}
		if err != nil {
			return ev, err
		}
		in, err := Inputs(b, bt)
		if err != nil {
			return ev, err
		}
		g := autograd.New(b, pool)
		var loss *autograd.Var
		var n int
		g.NoGrad(func() { loss, n = m.Loss(g, in, bt.Labels) })
		v, err := g.Value(loss)
		g.Release()
		if err != nil {
			return ev, err
		}
		ev.Sum += v[0]
		ev.Tokens += n
		ev.Examples += len(bt.Sources)
	}
}

// metric writes one line of metrics.jsonl and sends it to the trackers.
func (r *Run) metric(m map[string]any) error {
	r.track(m)
	if r.metrics == nil {
		return nil
	}
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = r.metrics.Write(append(line, '\n'))
	return err
}

// Fit trains until the recipe's steps or epochs are done, evaluating and
// checkpointing on the way, and saves the result. The trackers get the
// run's status at the end: FINISHED, FAILED, or KILLED when ctx was
// cancelled (Ctrl-C).
func (r *Run) Fit(ctx context.Context) (*Result, error) {
	r.bar = progress.New(r.Out, r.totalSteps, r.terminal)
	r.bar.SetEvery(max(1, r.Recipe.LoggingSteps))
	res, err := r.fit(ctx)
	r.bar.Done()
	status := tracking.StatusFinished
	switch {
	case ctx.Err() != nil:
		status = tracking.StatusKilled
	case err != nil:
		status = tracking.StatusFailed
	}
	r.finishTracking(status)
	return res, err
}

func (r *Run) fit(ctx context.Context) (*Result, error) {
	rc := r.Recipe
	it, err := r.Data.Train(r.dataState)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	res := &Result{EvalLoss: math.NaN()}
	start := time.Now()
	var tokensSeen int64
	r.Train.SetTraining(true)
	for r.step < r.totalSteps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		bs, window, err := r.stepBatches(it)
		if err != nil {
			return res, err
		}
		if len(bs) == 0 {
			break // the data ran out before max_steps
		}
		set := r.Train.Params()
		if err := set.ZeroGrad(); err != nil {
			return res, err
		}
		total := 0.0
		bad := false
		for i, bt := range bs {
			// Each micro-batch draws its own dropout masks, from the step.
			r.Train.SetStep(uint64(r.step*rc.GradientAccumulationSteps + i))
			l, err := r.microStep(bt, max(window, 1))
			if err != nil {
				return res, fmt.Errorf("step %d: %w", r.step+1, err)
			}
			if math.IsNaN(l) || math.IsInf(l, 0) {
				bad = true
				break
			}
			total += l
			tokensSeen += int64(bt.B * bt.T)
		}
		loss := total / float64(max(window, 1))
		if bad {
			if rc.NaNPolicy != "skip" {
				return res, fmt.Errorf("step %d: the loss is not finite (NaN or Inf); lower the learning rate, or set nan_policy: skip to skip such steps", r.step+1)
			}
			r.bar.Log(fmt.Sprintf("step %d: loss is not finite; step skipped (nan_policy: skip)", r.step+1))
		}
		lr := r.Sched.At(r.step)
		norm, scale := math.NaN(), 1.0
		if !bad {
			if norm, scale, err = optim.ClipGradNorm(set, rc.MaxGradNorm); err != nil {
				return res, err
			}
			if err := r.Opt.Step(lr, scale); err != nil {
				return res, err
			}
		}
		r.step++
		r.dataState = ptr(it.State())
		res.FinalLoss = loss
		elapsed := time.Since(start)
		tps := float64(tokensSeen) / elapsed.Seconds()
		if rc.LoggingSteps > 0 {
			r.bar.Update(r.step, loss, lr, tps)
		}
		if err := r.metric(map[string]any{"step": r.step, "loss": finite(loss), "lr": lr, "grad_norm": finite(norm),
			"tokens": window, "tokens_per_sec": tps, "epoch": it.Epoch(), "skipped": bad}); err != nil {
			return res, err
		}
		if rc.EvalSteps > 0 && r.step%rc.EvalSteps == 0 && r.step < r.totalSteps {
			if err := r.evalAndLog(res); err != nil {
				return res, err
			}
		}
		if rc.SaveSteps > 0 && r.step%rc.SaveSteps == 0 && r.step < r.totalSteps {
			dir, err := r.saveCheckpoint()
			if err != nil {
				return res, err
			}
			res.Checkpoints = append(res.Checkpoints, dir)
			r.plotLoss()
		}
	}
	if err := r.evalAndLog(res); err != nil {
		return res, err
	}
	if err := r.Train.Save(rc.OutputDir); err != nil {
		return res, err
	}
	res.Steps, res.Tokens, res.Elapsed, res.AdapterDir = r.step, tokensSeen, time.Since(start), rc.OutputDir
	return res, nil
}

func (r *Run) evalAndLog(res *Result) error {
	loss, n, err := r.Evaluate()
	if err != nil {
		return fmt.Errorf("evaluation at step %d: %w", r.step, err)
	}
	if n == 0 {
		return nil
	}
	res.EvalLoss = loss
	line := fmt.Sprintf("eval at step %d | loss %.4f | perplexity %.3f | %d tokens", r.step, loss, math.Exp(loss), n)
	if r.bar != nil {
		r.bar.Log(line)
	} else {
		fmt.Fprintln(r.Out, line)
	}
	return r.metric(map[string]any{"step": r.step, "eval_loss": loss, "eval_perplexity": math.Exp(loss), "eval_tokens": n})
}

func ptr[T any](v T) *T { return &v }

// finite maps NaN and Inf to nil for JSON.
func finite(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// outputPath is a path inside the output directory.
func (r *Run) outputPath(name string) string { return filepath.Join(r.Recipe.OutputDir, name) }

// Step is the number of optimiser steps taken so far.
func (r *Run) Step() int { return r.step }

// TotalSteps is the number of optimiser steps the run will take.
func (r *Run) TotalSteps() int { return r.totalSteps }
