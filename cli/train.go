package cli

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/whet-ai/whet/tracking/progress"
	"github.com/whet-ai/whet/trainer"
)

func init() {
	register(&Command{Name: "train", Short: "fine-tune a model as a YAML recipe says (LoRA or full)", Run: runTrain})
}

const trainSynopsis = `--recipe FILE [flags]

Trains as the recipe says (see docs/recipes.md): loads the model and the
data, trains LoRA adapters (or every weight), evaluates and checkpoints on
the way, and saves the adapter in PEFT's format to output_dir. Any recipe key
can be overridden with --set key=value (repeatable), e.g. --set lora.r=32;
the common ones have flags. --resume continues from the newest checkpoint in
output_dir, bit for bit as if the run had not stopped.`

func runTrain(env *Env, args []string) error {
	fs := newFlags(env, "train", trainSynopsis)
	recipePath := fs.String("recipe", "", "YAML recipe (required)")
	sets := fs.StringArray("set", nil, "override a recipe key: key.path=value (repeatable)")
	model := fs.String("model", "", "model directory, cached repo id or .gguf file (recipe key model)")
	dataFiles := fs.StringArray("data", nil, "dataset file or glob (repeatable; recipe key data.files)")
	out := fs.String("output-dir", "", "output directory (recipe key output_dir)")
	maxSteps := fs.Int("max-steps", -1, "stop after this many optimiser steps (recipe key max_steps)")
	epochs := fs.Int("epochs", -1, "number of epochs (recipe key epochs)")
	lr := fs.Float64("lr", math.NaN(), "peak learning rate (recipe key optimizer.lr)")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in the output directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recipePath == "" {
		return fmt.Errorf("%w: --recipe is required (recipes/ has examples; `whet demo` trains a built-in one)", ErrUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	rc, err := trainer.LoadRecipe(*recipePath)
	if err != nil {
		return err
	}
	var overrides []string
	if *model != "" {
		overrides = append(overrides, "model="+yamlString(*model))
	}
	if len(*dataFiles) > 0 {
		quoted := make([]string, len(*dataFiles))
		for i, f := range *dataFiles {
			quoted[i] = yamlString(f)
		}
		overrides = append(overrides, "data.files=["+strings.Join(quoted, ", ")+"]")
	}
	if *out != "" {
		overrides = append(overrides, "output_dir="+yamlString(*out))
	}
	if *maxSteps >= 0 {
		overrides = append(overrides, "max_steps="+strconv.Itoa(*maxSteps))
	}
	if *epochs >= 0 {
		overrides = append(overrides, "epochs="+strconv.Itoa(*epochs))
	}
	if !math.IsNaN(*lr) {
		overrides = append(overrides, "optimizer.lr="+strconv.FormatFloat(*lr, 'g', -1, 64))
	}
	for _, s := range append(overrides, *sets...) {
		if err := rc.Set(s); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return train(ctx, env, rc, *resume)
}

// train runs a recipe and prints the summary.
func train(ctx context.Context, env *Env, rc *trainer.Recipe, resume bool) error {
	terminal := false
	if f, ok := env.Stdout.(*os.File); ok {
		terminal = progress.IsTerminal(f)
	}
	run, err := trainer.New(rc, trainer.Options{Out: env.Stdout, Resume: resume, Terminal: terminal})
	if err != nil {
		return err
	}
	defer run.Close()
	fmt.Fprintf(env.Stdout, "model %s | %s | %d trainable parameters | %d steps\n",
		run.Loaded.Source, run.Backend.Describe(), run.Train.Params().Len(), run.TotalSteps())
	res, err := run.Fit(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted at step %d; --resume continues from the last checkpoint", run.Step())
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "done: %d steps in %s, %d tokens, final loss %.4f", res.Steps, res.Elapsed.Round(1e8), res.Tokens, res.FinalLoss)
	if !math.IsNaN(res.EvalLoss) {
		fmt.Fprintf(env.Stdout, ", eval loss %.4f (perplexity %.3f)", res.EvalLoss, math.Exp(res.EvalLoss))
	}
	fmt.Fprintf(env.Stdout, "\nsaved to %s\n", res.AdapterDir)
	return nil
}

// yamlString quotes s as a YAML scalar for --set.
func yamlString(s string) string { return strconv.Quote(s) }
