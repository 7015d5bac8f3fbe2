package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/quickstart"
)

func init() {
	register(&Command{Name: "quickstart", Short: "train, merge and try a LoRA adapter end to end on a built-in tiny model (nothing to download)", Run: runQuickstart})
}

const quickstartSynopsis = `[--dir DIR]

Builds a tiny Llama with random weights and a synthetic dataset of made-up
facts in DIR, trains a LoRA adapter on it (showing the loss fall), saves the
adapter in PEFT's format, merges it into the base, and asks the merged model
the questions, before and after. Nothing is downloaded. It ends by saying
what to run next.`

func runQuickstart(env *Env, args []string) error {
	fs := newFlags(env, "quickstart", quickstartSynopsis)
	dir := fs.String("dir", "whet-quickstart", "working directory (made if absent)")
	seed := fs.Uint64("seed", 42, "seed of the model's weights and of training")
	force := fs.Bool("force", false, "reuse a DIR that already holds a quickstart run")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		if !*force {
			return fmt.Errorf("%s is not empty; pass --force to start it over, or choose another --dir", *dir)
		}
		for _, sub := range []string{"base", "data", "lora-out"} {
			if err := os.RemoveAll(filepath.Join(*dir, sub)); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	fmt.Fprintf(env.Stdout, "== building a tiny Llama (random weights) and a dataset of made-up facts in %s\n", *dir)
	rc, err := quickstart.Build(*dir, *seed)
	if err != nil {
		return err
	}
	before, err := quiz(rc.Model)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "before training, the model answers %d of %d questions right\n\n", before.right, before.total)

	fmt.Fprintln(env.Stdout, "== training a LoRA adapter (r 16, all linear layers)")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := train(ctx, env, rc, false); err != nil {
		return err
	}

	merged := filepath.Join(rc.OutputDir, "merged")
	fmt.Fprintln(env.Stdout, "\n== merging the adapter into the base")
	if err := runMerge(env, []string{"--adapter", rc.OutputDir, "--out", merged, "--force"}); err != nil {
		return err
	}
	after, err := quiz(merged)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\n== asking the merged model (greedy decoding)\n")
	for _, line := range after.lines[:min(4, len(after.lines))] {
		fmt.Fprintln(env.Stdout, line)
	}
	fmt.Fprintf(env.Stdout, "after training, the merged model answers %d of %d questions right (before: %d)\n", after.right, after.total, before.right)
	fmt.Fprintf(env.Stdout, "\ndone in %s. Next:\n", time.Since(start).Round(time.Second))
	fmt.Fprintf(env.Stdout, "  whet generate --model %s --prompt $'Q: What colour is the mox?\\nA:' --max-new-tokens 10\n", merged)
	fmt.Fprintf(env.Stdout, "  whet train --recipe recipes/quickstart.yaml --model YOUR-MODEL --data YOUR-DATA.jsonl   (a real model: a Hugging Face directory, cached repo id or .gguf)\n")
	return nil
}

type quizResult struct {
	right, total int
	lines        []string
}

// quiz asks the model at path every question greedily and counts the
// answers that come out exactly.
func quiz(path string) (quizResult, error) {
	var res quizResult
	b, err := backend.Default()
	if err != nil {
		return res, err
	}
	l, err := models.Load(b, path, "")
	if err != nil {
		return res, err
	}
	for _, f := range quickstart.Facts() {
		ids := l.Tokenizer.Encode(quickstart.Prompt(f), true)
		out, err := models.Generate(b, l.Model, ids, models.GenerateOptions{MaxNewTokens: len(f.Answer) + 1, Stop: l.Model.Config().EOSTokenIDs}, nil)
		if err != nil {
			return res, err
		}
		got := l.Tokenizer.Decode(out, true)
		ok := strings.HasPrefix(got, f.Answer)
		if ok {
			res.right++
		}
		mark := "wrong"
		if ok {
			mark = "right"
		}
		res.lines = append(res.lines, fmt.Sprintf("  Q: %s  A: %s  (%s)", f.Question, strings.TrimSpace(got), mark))
		res.total++
	}
	return res, nil
}
