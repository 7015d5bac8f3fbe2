package trainer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/peft"
)

// newTrainable makes what the recipe trains: LoRA adapters (new, or from
// init_adapter) or every weight.
func newTrainable(b backend.Backend, l *models.Loaded, rc *Recipe) (Trainable, error) {
	if rc.Method == "full" {
		set, err := peft.FullFineTune(b, l.Model)
		if err != nil {
			return nil, err
		}
		return &fullTrainable{set: set, loaded: l}, nil
	}
	var ad *peft.Adapter
	var err error
	if rc.InitAdapter != "" {
		ad, err = peft.Load(b, l.Model, rc.InitAdapter, true)
	} else {
		ad, err = peft.Attach(b, l.Model, loraConfig(rc, l), rc.Seed)
	}
	if err != nil {
		return nil, err
	}
	ad.SetSeed(rc.Seed)
	return &loraTrainable{ad: ad}, nil
}

// loraConfig turns the recipe's lora section into PEFT's config.
func loraConfig(rc *Recipe, l *models.Loaded) *peft.LoraConfig {
	lr := rc.LoRA
	targets := peft.ModuleList(lr.TargetModules...)
	if lr.TargetRegex != "" {
		targets = peft.ModulePattern(lr.TargetRegex)
	} else if len(lr.TargetModules) == 1 && lr.TargetModules[0] == "all-linear" {
		targets = peft.ModulePattern("all-linear")
	}
	cfg := peft.NewLoraConfig(targets)
	cfg.R, cfg.LoraAlpha, cfg.LoraDropout = lr.R, lr.Alpha, lr.Dropout
	cfg.UseRSLoRA, cfg.UseDoRA = lr.RSLoRA, lr.DoRA
	cfg.LayersToTransform = peft.Ints(lr.LayersToTransform)
	if lr.Init == "gaussian" {
		cfg.InitLoraWeights = peft.InitGaussian
	}
	cfg.BaseModelNameOrPath = rc.Model
	if l.Dir != nil && l.Dir.RepoID() != "" {
		cfg.BaseModelNameOrPath = l.Dir.RepoID()
	}
	return cfg
}

// loraTrainable trains a PEFT adapter.
type loraTrainable struct {
	ad *peft.Adapter
}

func (t *loraTrainable) Params() *optim.ParamSet { return t.ad.Params }

// Groups gives lora_B the LoRA+ learning-rate ratio; every adapter tensor
// gets the recipe's weight decay.
func (t *loraTrainable) Groups(rc *Recipe) map[string]optim.Group {
	wd := rc.Optimizer.WeightDecay
	return map[string]optim.Group{
		"lora_A":         {WeightDecay: wd},
		"lora_B":         {WeightDecay: wd, LRScale: rc.Optimizer.LoRAPlusRatio},
		"lora_magnitude": {WeightDecay: wd},
	}
}

// SetStep seeds dropout: each micro-batch of a step draws its own masks.
func (t *loraTrainable) SetStep(step uint64) { t.ad.SetStep(step) }

func (t *loraTrainable) SetTraining(on bool)   { t.ad.SetTraining(on) }
func (t *loraTrainable) Save(dir string) error { return t.ad.Save(dir) }

// Load reads the adapter tensors of dir back into the parameters.
func (t *loraTrainable) Load(dir string) error {
	return loadValues(t.ad.Params, filepath.Join(dir, "adapter_model.safetensors"))
}

// fullTrainable trains every weight of the model.
type fullTrainable struct {
	set    *optim.ParamSet
	loaded *models.Loaded
}

func (t *fullTrainable) Params() *optim.ParamSet { return t.set }

// Groups puts no weight decay on norms and biases (the no_decay group), as
// the Hugging Face Trainer does.
func (t *fullTrainable) Groups(rc *Recipe) map[string]optim.Group {
	return map[string]optim.Group{
		peft.GroupDecay:   {WeightDecay: rc.Optimizer.WeightDecay},
		peft.GroupNoDecay: {WeightDecay: 0},
	}
}

func (t *fullTrainable) SetStep(uint64)   {}
func (t *fullTrainable) SetTraining(bool) {}

// Save writes model.safetensors (F32, Hugging Face names) and, from the
// base directory, config.json and the tokenizer files.
func (t *fullTrainable) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b := t.set.Backend()
	var ts []safetensors.Tensor
	for _, p := range t.set.Params {
		raw := make([]byte, p.Var.Value.Bytes())
		if err := b.CopyToHost(raw, p.Var.Value); err != nil {
			return err
		}
		ts = append(ts, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: p.Shape, Data: raw})
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		return err
	}
	if t.loaded.Dir != nil {
		for _, name := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"} {
			raw, err := os.ReadFile(filepath.Join(t.loaded.Dir.Path(), name))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *fullTrainable) Load(dir string) error {
	return loadValues(t.set, filepath.Join(dir, "model.safetensors"))
}

// loadValues copies the tensors of a safetensors file into the parameters
// of the same names, checking shapes and dtypes.
func loadValues(set *optim.ParamSet, path string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range set.Params {
		info, ok := f.Info(p.Name)
		if !ok {
			return fmt.Errorf("load %s: tensor %s is missing", path, p.Name)
		}
		dt, ok := info.DType.TensorDType()
		if !ok || dt != p.Var.Value.DType() || !slices.Equal(info.Shape, p.Shape) {
			return fmt.Errorf("load %s: tensor %s is %v%v, want %v", path, p.Name, info.DType, info.Shape, p.Var.Value)
		}
		raw, err := f.Raw(p.Name)
		if err != nil {
			return err
		}
		if err := set.Backend().CopyFromHost(p.Var.Value, raw); err != nil {
			return fmt.Errorf("load %s: tensor %s: %w", path, p.Name, err)
		}
	}
	return nil
}
