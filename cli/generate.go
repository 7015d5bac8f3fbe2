package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/peft"
)

func init() {
	register(&Command{Name: "generate", Short: "generate text from a model (greedy by default), streaming it to stdout", Run: runGenerate})
}

const generateSynopsis = `--model MODEL [flags]

Loads MODEL (a Hugging Face model directory, a repo id in the local Hugging
Face cache, or a .gguf file), encodes --prompt with its tokenizer (with BOS;
an empty prompt is BOS alone) or takes --prompt-ids, and decodes up to
--max-new-tokens tokens, greedily unless --temperature is above 0, printing
the text as it is generated. It stops at the model's end-of-sequence tokens.
--adapter applies a PEFT LoRA adapter directory to the base.`

func runGenerate(env *Env, args []string) error {
	fs := newFlags(env, "generate", generateSynopsis)
	model := fs.String("model", "", "model directory, cached repo id or .gguf file (required)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter directory to apply")
	prompt := fs.String("prompt", "", "prompt text")
	promptIDs := fs.String("prompt-ids", "", "prompt as token ids (JSON array or whitespace-separated), instead of --prompt")
	maxNew := fs.Int("max-new-tokens", 128, "most tokens to generate")
	temperature := fs.Float64("temperature", 0, "sampling temperature; 0 decodes greedily")
	topP := fs.Float64("top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	seed := fs.Uint64("seed", 0, "seed of the sampler")
	ignoreEOS := fs.Bool("ignore-eos", false, "keep generating past end-of-sequence tokens")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *model == "":
		return fmt.Errorf("%w: --model is required", ErrUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	case *maxNew < 0:
		return fmt.Errorf("%w: --max-new-tokens %d is negative", ErrUsage, *maxNew)
	case *temperature < 0:
		return fmt.Errorf("%w: --temperature %g is negative", ErrUsage, *temperature)
	case *topP <= 0 || *topP > 1:
		return fmt.Errorf("%w: --top-p %g, want (0, 1]", ErrUsage, *topP)
	case *prompt != "" && *promptIDs != "":
		return fmt.Errorf("%w: give --prompt or --prompt-ids, not both", ErrUsage)
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
	tok := l.Tokenizer
	if tok == nil && *promptIDs == "" {
		return fmt.Errorf("%s has no tokenizer.json; give the prompt with --prompt-ids", l.Source)
	}
	var ids []int
	if *promptIDs != "" {
		if ids, err = parseIDs(*promptIDs); err != nil {
			return fmt.Errorf("--prompt-ids: %w", err)
		}
	} else {
		ids = tok.Encode(*prompt, true)
		if bos, ok := tok.BOS(); ok && (len(ids) == 0 || ids[0] != bos) {
			ids = append([]int{bos}, ids...)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("the prompt is empty and the tokenizer has no BOS token; give --prompt-ids")
	}
	opt := models.GenerateOptions{MaxNewTokens: *maxNew, Temperature: *temperature, TopP: *topP, Seed: *seed}
	if !*ignoreEOS {
		opt.Stop = stopTokens(l)
	}
	out := bufio.NewWriter(env.Stdout)
	defer out.Flush()
	gen := append([]int(nil), ids...)
	printed := ""
	if tok != nil {
		printed = tok.Decode(ids, true)
	}
	emit := func(id int) error {
		gen = append(gen, id)
		if tok == nil {
			_, err := fmt.Fprintf(out, "%d ", id)
			return err
		}
		// Decode the prompt and the continuation together and print what
		// is new, so that tokens that only make sense in context (bytes of
		// one character, a leading space) come out right.
		text := tok.Decode(gen, true)
		if strings.HasPrefix(text, printed) && !strings.HasSuffix(text, "\uFFFD") {
			fmt.Fprint(out, text[len(printed):])
			printed = text
		}
		return out.Flush()
	}
	if _, err := models.Generate(b, l.Model, ids, opt, emit); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return nil
}

// stopTokens are the ids that end generation: the config's eos_token_id
// (one or several), else the tokenizer's EOS.
func stopTokens(l *models.Loaded) []int {
	if ids := l.Model.Config().EOSTokenIDs; len(ids) > 0 {
		return ids
	}
	if l.Tokenizer != nil {
		if eos, ok := l.Tokenizer.EOS(); ok {
			return []int{eos}
		}
	}
	return nil
}
