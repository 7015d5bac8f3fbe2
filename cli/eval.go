package cli

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/peft"
	"github.com/whet-ai/whet/trainer"
)

func init() {
	register(&Command{Name: "eval", Short: "loss and perplexity of a model (and adapter) on a dataset, as JSON", Run: runEval})
}

const evalSynopsis = `--model MODEL --data FILE [flags]

Runs MODEL (with --adapter applied) over every example of the dataset, with
no training, and prints one JSON object: the mean loss per trained token,
the perplexity, and the numbers of examples and trained tokens. The data
flags mean what the recipe keys of the same names mean (docs/recipes.md).`

func runEval(env *Env, args []string) error {
	fs := newFlags(env, "eval", evalSynopsis)
	model := fs.String("model", "", "model directory, cached repo id or .gguf file (required)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	adapter := fs.String("adapter", "", "PEFT adapter directory to apply")
	files := fs.StringArray("data", nil, "dataset file or glob (repeatable, required)")
	format := fs.String("format", "", "dataset format (default: detected)")
	seqLen := fs.Int("sequence-len", 2048, "longest example, in tokens")
	trainOn := fs.String("train-on", "assistant", "tokens scored: assistant, last or all")
	batch := fs.Int("batch-size", 4, "rows per batch")
	skipInvalid := fs.Bool("skip-invalid", false, "skip records that cannot be read instead of failing")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *model == "" || len(*files) == 0:
		return fmt.Errorf("%w: --model and --data are required", ErrUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	case *batch < 1:
		return fmt.Errorf("%w: --batch-size %d, want at least 1", ErrUsage, *batch)
	}
	b, err := backend.Default()
	if err != nil {
		return err
	}
	l, err := models.Load(b, *model, *revision)
	if err != nil {
		return err
	}
	if *adapter != "" {
		if _, err := peft.Apply(b, l.Model, *adapter); err != nil {
			return err
		}
	}
	dm, err := trainer.DataModel(l, "")
	if err != nil {
		return err
	}
	cfg := data.DefaultConfig(*files...)
	cfg.Format, cfg.SequenceLen, cfg.TrainOn = data.Format(*format), *seqLen, data.TrainOn(*trainOn)
	cfg.Shuffle, cfg.BatchSize, cfg.SkipInvalid = false, *batch, *skipInvalid
	ds, err := data.Open(cfg, dm)
	if err != nil {
		return err
	}
	it, err := ds.Train(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	ev, err := trainer.EvalLoss(b, autograd.NewPool(b), l.Model, it)
	if err != nil {
		return err
	}
	if ev.Tokens == 0 {
		return fmt.Errorf("no trained tokens in the data (check --format, --sequence-len and --train-on)")
	}
	mean := ev.Mean()
	st := it.Stats()
	out, err := json.Marshal(map[string]any{"loss": mean, "perplexity": math.Exp(mean), "examples": ev.Examples,
		"tokens": ev.Tokens, "skipped": st.Skipped, "too_long": st.TooLong})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, string(out))
	return err
}
