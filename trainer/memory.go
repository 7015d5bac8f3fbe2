package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/models"
)

// Estimate is the memory a run needs, in bytes, by kind.
type Estimate struct {
	Weights, Trainable, Optimizer, Activations int64
}

// Total is the sum of the parts.
func (e Estimate) Total() int64 { return e.Weights + e.Trainable + e.Optimizer + e.Activations }

// estimate adds up the run's memory: the model's weights as stored, the
// trainable parameters with their gradients and two optimiser moments (F32),
// and the activations a micro-batch keeps for the backward pass (about 34
// values per token per hidden unit per layer for a Llama block in F32, or
// two per layer with gradient checkpointing, plus the logits twice).
func (r *Run) estimate() Estimate {
	var e Estimate
	e.Weights = models.WeightBytes(r.Loaded.Model)
	n := int64(r.Train.Params().Len())
	e.Trainable = 2 * 4 * n // values and gradients
	if r.Recipe.Method == "full" {
		e.Trainable = 4 * n // the values are the model's weights, counted above
	}
	e.Optimizer = 2 * 4 * n
	if r.Recipe.Optimizer.Name == "adamw8bit" {
		e.Optimizer = 2*n + 2*4*(n/256+1) // 8-bit moments and their block scales
	}
	cfg := r.Loaded.Model.Config()
	tokens := int64(r.Recipe.MicroBatchSize * r.Recipe.Data.SequenceLen)
	perLayer := int64(34)
	if r.Recipe.GradientCheckpointing {
		perLayer = 2
	}
	e.Activations = 4 * tokens * (perLayer*int64(cfg.HiddenSize)*int64(cfg.NumHiddenLayers) + 2*int64(cfg.VocabSize))
	return e
}

// availableMemory is MemAvailable from /proc/meminfo, or 0 where it cannot
// be read.
func availableMemory() int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// checkMemory prints the estimate and refuses a run that cannot fit.
func (r *Run) checkMemory() error {
	e := r.estimate()
	avail := availableMemory()
	if r.Recipe.MemoryLimitGB > 0 {
		avail = int64(r.Recipe.MemoryLimitGB * (1 << 30))
	}
	gb := func(b int64) string { return fmt.Sprintf("%.2f GB", float64(b)/(1<<30)) }
	msg := fmt.Sprintf("memory: needs about %s (weights %s, trainable+gradients %s, optimizer %s, activations %s)",
		gb(e.Total()), gb(e.Weights), gb(e.Trainable), gb(e.Optimizer), gb(e.Activations))
	if avail > 0 {
		msg += fmt.Sprintf(", %s available", gb(avail))
	}
	fmt.Fprintln(r.Out, msg)
	if avail > 0 && e.Total() > avail {
		hint := "lower micro_batch_size or sequence_len"
		if !r.Recipe.GradientCheckpointing {
			hint += ", or set gradient_checkpointing: true"
		}
		return fmt.Errorf("%s: it does not fit; %s", msg, hint)
	}
	return nil
}

// keptMetrics returns the lines of a metrics.jsonl whose step is at most
// step.
func keptMetrics(path string, step int) []byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []byte
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		var m struct {
			Step int `json:"step"`
		}
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &m) != nil || m.Step > step {
			continue
		}
		out = append(out, line...)
	}
	return out
}
