package peft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
)

// PEFTVersion is the release of Hugging Face PEFT whose adapter_config.json
// layout Save writes: every key that release writes, with its defaults. Later
// releases read it (a missing key takes its default), and older ones do not
// meet keys they do not know. Keys that later releases added (peft_version,
// alora_invocation_tokens, arrow_config, ensure_weight_tying, ...) are read,
// and written back only when set.
const PEFTVersion = "0.17.1"

// AllLinear is the target_modules shorthand for every linear layer except
// the output layer (lm_head).
const AllLinear = "all-linear"

// Init methods of init_lora_weights that Attach implements.
const (
	// InitDefault (init_lora_weights: true) is PEFT's default: A from
	// kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and B
	// zero, so that the adapter starts as a no-op.
	InitDefault InitWeights = "true"
	// InitRandom (false) leaves both A and B random, as torch's nn.Linear
	// initialises them: A ~ U(±1/sqrt(in)), B ~ U(±1/sqrt(r)). For tests.
	InitRandom InitWeights = "false"
	// InitGaussian ("gaussian"): A ~ N(0, (1/r)²), B zero.
	InitGaussian InitWeights = "gaussian"
)

// InitWeights is init_lora_weights: true, false or a method name. The zero
// value means true.
type InitWeights string

// MarshalJSON writes true and false as booleans and methods as strings.
func (w InitWeights) MarshalJSON() ([]byte, error) {
	switch w {
	case "", InitDefault:
		return []byte("true"), nil
	case InitRandom:
		return []byte("false"), nil
	}
	return json.Marshal(string(w))
}

// UnmarshalJSON reads a boolean or a string.
func (w *InitWeights) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		*w = InitRandom
		if b {
			*w = InitDefault
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("init_lora_weights: want a boolean or a string, got %s", data)
	}
	*w = InitWeights(s)
	return nil
}

// Modules is target_modules or exclude_modules: a list of module names (a
// module matches a name exactly or ends with "." + name), or one string,
// which is a regular expression the whole module name must match (or, for
// target_modules, the shorthand "all-linear"). The zero value is null.
type Modules struct {
	// Names is the list form; nil when the value is a string or null.
	Names []string
	// Pattern is the string form.
	Pattern string
	// IsPattern says the value is the string form (Pattern may be "").
	IsPattern bool
}

// ModuleList returns the list form.
func ModuleList(names ...string) Modules { return Modules{Names: names} }

// ModulePattern returns the string form: a regular expression, or AllLinear.
func ModulePattern(p string) Modules { return Modules{Pattern: p, IsPattern: true} }

// IsZero reports whether m is null.
func (m Modules) IsZero() bool { return !m.IsPattern && m.Names == nil }

// MarshalJSON writes a list, a string or null.
func (m Modules) MarshalJSON() ([]byte, error) {
	switch {
	case m.IsPattern:
		return json.Marshal(m.Pattern)
	case m.Names == nil:
		return []byte("null"), nil
	}
	return json.Marshal(m.Names)
}

// UnmarshalJSON reads a list of strings, a string or null.
func (m *Modules) UnmarshalJSON(data []byte) error {
	*m = Modules{}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*m = ModulePattern(s)
		return nil
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return fmt.Errorf("want a list of module names, a regular expression or null, got %s", data)
	}
	if names == nil {
		names = []string{}
	}
	m.Names = names
	return nil
}

// Ints is a list of integers that may also be read from a single integer
// (layers_to_transform accepts both). It is written as a list, or null when
// nil.
type Ints []int

// UnmarshalJSON reads an integer, a list of integers or null.
func (v *Ints) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*v = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(data, &n); err == nil {
		*v = Ints{n}
		return nil
	}
	var l []int
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("want an integer or a list of integers, got %s", data)
	}
	*v = Ints(l)
	if *v == nil {
		*v = Ints{}
	}
	return nil
}

// Strings is a list of strings that may also be read from a single string
// (layers_pattern accepts both). It is written as a list, or null when nil.
type Strings []string

// UnmarshalJSON reads a string, a list of strings or null.
func (v *Strings) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*v = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*v = Strings{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", data)
	}
	*v = Strings(l)
	if *v == nil {
		*v = Strings{}
	}
	return nil
}

// LoraConfig is PEFT's LoraConfig as adapter_config.json holds it. Every
// key PEFT writes has a field; the options whet does not implement are kept
// as raw JSON (null by default) so that a config read from PEFT is written
// back unchanged, and Validate names any that is set.
type LoraConfig struct {
	// PeftType is "LORA".
	PeftType string `json:"peft_type"`
	// TaskType is "CAUSAL_LM" for the models whet trains.
	TaskType string `json:"task_type"`
	// BaseModelNameOrPath is the base model's repo id or directory.
	BaseModelNameOrPath string `json:"base_model_name_or_path"`
	// Revision is the base model's revision, or null.
	Revision *string `json:"revision"`
	// PeftVersion is the PEFT release that wrote the file (written by PEFT
	// 0.18 and later; empty in whet's files).
	PeftVersion string `json:"peft_version,omitempty"`
	// InferenceMode is true in saved configs.
	InferenceMode bool `json:"inference_mode"`
	// AutoMapping is PEFT's auto_mapping (null for task-type models).
	AutoMapping json.RawMessage `json:"auto_mapping"`

	// R is the rank.
	R int `json:"r"`
	// LoraAlpha is the scaling numerator: the adapter's term is multiplied
	// by LoraAlpha/R (LoraAlpha/sqrt(R) with UseRSLoRA).
	LoraAlpha float64 `json:"lora_alpha"`
	// LoraDropout is the dropout probability on the adapter's input.
	LoraDropout float64 `json:"lora_dropout"`
	// TargetModules selects the linear layers that get adapters.
	TargetModules Modules `json:"target_modules"`
	// ExcludeModules removes layers from the selection.
	ExcludeModules Modules `json:"exclude_modules"`
	// UseRSLoRA scales by LoraAlpha/sqrt(R) (rank-stabilised LoRA).
	UseRSLoRA bool `json:"use_rslora"`
	// UseDoRA adds DoRA's trainable magnitude vector.
	UseDoRA bool `json:"use_dora"`
	// InitLoraWeights is how Attach initialises A and B.
	InitLoraWeights InitWeights `json:"init_lora_weights"`
	// LayersToTransform restricts a list-form TargetModules to these layer
	// indices (the number after LayersPattern in a module's name).
	LayersToTransform Ints `json:"layers_to_transform"`
	// LayersPattern names the layer list ("layers"); empty means any.
	LayersPattern Strings `json:"layers_pattern"`
	// Bias is "none" (whet trains no biases through the adapter).
	Bias string `json:"bias"`
	// FanInFanOut is for GPT-2's Conv1D layout; false for Llama.
	FanInFanOut bool `json:"fan_in_fan_out"`
	// LoraBias adds a bias to lora_B (not supported).
	LoraBias bool `json:"lora_bias"`
	// RankPattern and AlphaPattern give per-module ranks and alphas (not
	// supported; empty).
	RankPattern  map[string]int     `json:"rank_pattern"`
	AlphaPattern map[string]float64 `json:"alpha_pattern"`
	// ModulesToSave are extra fully trained modules (not supported).
	ModulesToSave json.RawMessage `json:"modules_to_save"`
	// LoftQConfig is {} unless init_lora_weights is "loftq".
	LoftQConfig json.RawMessage `json:"loftq_config"`
	// MegatronCore is "megatron.core".
	MegatronCore string `json:"megatron_core"`
	// UseQALoRA and QALoRAGroupSize are QA-LoRA's (not supported).
	UseQALoRA       bool `json:"use_qalora"`
	QALoRAGroupSize int  `json:"qalora_group_size"`
	// EnsureWeightTying is PEFT 0.18's option for tied embeddings.
	EnsureWeightTying bool `json:"ensure_weight_tying,omitempty"`

	// Options whet does not implement, null by default; Validate rejects
	// any that is set that would change the adapter's maths. The ones
	// PEFT 0.17.1 writes are always written; later ones only when set.
	CordaConfig           json.RawMessage `json:"corda_config"`
	EvaConfig             json.RawMessage `json:"eva_config"`
	LayerReplication      json.RawMessage `json:"layer_replication"`
	MegatronConfig        json.RawMessage `json:"megatron_config"`
	TargetParameters      json.RawMessage `json:"target_parameters"`
	TrainableTokenIndices json.RawMessage `json:"trainable_token_indices"`
	AloraInvocationTokens json.RawMessage `json:"alora_invocation_tokens,omitempty"`
	ArrowConfig           json.RawMessage `json:"arrow_config,omitempty"`
	KasaConfig            json.RawMessage `json:"kasa_config,omitempty"`
	LoraGAConfig          json.RawMessage `json:"lora_ga_config,omitempty"`
	MonteCLoRAConfig      json.RawMessage `json:"monteclora_config,omitempty"`
	UseBDLoRA             json.RawMessage `json:"use_bdlora,omitempty"`
	VeLoRAConfig          json.RawMessage `json:"velora_config,omitempty"`

	// Extra holds keys of adapter_config.json that this struct does not
	// know (from a newer PEFT), written back as they were read.
	Extra map[string]json.RawMessage `json:"-"`
}

// Config is the name Apply has always returned its config under.
type Config = LoraConfig

// NewLoraConfig returns PEFT's defaults (r 8, lora_alpha 8, no dropout,
// bias "none", init true) for a causal LM with the given targets.
func NewLoraConfig(targets Modules) *LoraConfig {
	return &LoraConfig{
		PeftType:        "LORA",
		TaskType:        "CAUSAL_LM",
		R:               8,
		LoraAlpha:       8,
		TargetModules:   targets,
		InitLoraWeights: InitDefault,
		Bias:            "none",
		RankPattern:     map[string]int{},
		AlphaPattern:    map[string]float64{},
		LoftQConfig:     json.RawMessage("{}"),
		MegatronCore:    "megatron.core",
		QALoRAGroupSize: 16,
	}
}

// Scale is the factor of the adapter's term: lora_alpha/r, or
// lora_alpha/sqrt(r) with rsLoRA.
func (c *LoraConfig) Scale() float64 {
	if c.UseRSLoRA {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// knownKeys are the JSON keys of LoraConfig's fields.
var knownKeys = func() map[string]bool {
	c := &loraConfigJSON{PeftVersion: "x", EnsureWeightTying: true}
	for _, r := range (*LoraConfig)(c).rawOptions() {
		*r = json.RawMessage("1")
	}
	data, _ := json.Marshal(c)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(data, &m)
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}()

// loraConfigJSON is LoraConfig without its methods, for encoding/json.
type loraConfigJSON LoraConfig

// MarshalJSON writes every key PEFT writes, sorted as PEFT sorts them, with
// PEFT's defaults for unset maps, plus Extra.
func (c *LoraConfig) MarshalJSON() ([]byte, error) {
	cc := *c
	if cc.RankPattern == nil {
		cc.RankPattern = map[string]int{}
	}
	if cc.AlphaPattern == nil {
		cc.AlphaPattern = map[string]float64{}
	}
	if len(cc.LoftQConfig) == 0 {
		cc.LoftQConfig = json.RawMessage("{}")
	}
	data, err := json.Marshal((*loraConfigJSON)(&cc))
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return json.Marshal(m) // map keys are sorted
}

// UnmarshalJSON reads adapter_config.json over PEFT's defaults; unknown
// keys go to Extra.
func (c *LoraConfig) UnmarshalJSON(data []byte) error {
	def := NewLoraConfig(Modules{})
	def.RankPattern, def.AlphaPattern = nil, nil
	if err := json.Unmarshal(data, (*loraConfigJSON)(def)); err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	for _, r := range def.rawOptions() {
		if bytes.Equal(bytes.TrimSpace(*r), []byte("null")) {
			*r = nil
		}
	}
	for k, v := range m {
		if !knownKeys[k] {
			if def.Extra == nil {
				def.Extra = map[string]json.RawMessage{}
			}
			def.Extra[k] = v
		}
	}
	*c = *def
	return nil
}

// rawOptions are the options kept as raw JSON.
func (c *LoraConfig) rawOptions() []*json.RawMessage {
	return []*json.RawMessage{
		&c.AutoMapping, &c.ModulesToSave, &c.LoftQConfig, &c.AloraInvocationTokens, &c.ArrowConfig,
		&c.CordaConfig, &c.EvaConfig, &c.KasaConfig, &c.LayerReplication, &c.LoraGAConfig,
		&c.MegatronConfig, &c.MonteCLoRAConfig, &c.TargetParameters, &c.TrainableTokenIndices,
		&c.UseBDLoRA, &c.VeLoRAConfig,
	}
}

// isSet reports whether a raw option is present and not null, false, [] or
// {}.
func isSet(r json.RawMessage) bool {
	s := string(bytes.TrimSpace(r))
	return s != "" && s != "null" && s != "false" && s != "[]" && s != "{}"
}

// Validate checks that c describes a LoRA adapter whet can run, and names
// the first option it does not implement.
func (c *LoraConfig) Validate() error {
	switch {
	case c.PeftType != "" && c.PeftType != "LORA":
		return fmt.Errorf("peft_type %q, only LORA is supported", c.PeftType)
	case c.R <= 0:
		return fmt.Errorf("r = %d, want a positive rank", c.R)
	case math.IsNaN(c.LoraAlpha) || math.IsInf(c.LoraAlpha, 0):
		return fmt.Errorf("lora_alpha = %g", c.LoraAlpha)
	case !(c.LoraDropout >= 0 && c.LoraDropout < 1):
		return fmt.Errorf("lora_dropout = %g, want [0, 1)", c.LoraDropout)
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("bias %q is not supported (want none)", c.Bias)
	case c.FanInFanOut:
		return fmt.Errorf("fan_in_fan_out is not supported (Llama-family layers are [out, in])")
	case c.LoraBias:
		return fmt.Errorf("lora_bias is not supported")
	case c.UseQALoRA:
		return fmt.Errorf("use_qalora is not supported")
	case len(c.RankPattern) > 0:
		return fmt.Errorf("rank_pattern %v is not supported (one rank for every layer)", c.RankPattern)
	case len(c.AlphaPattern) > 0:
		return fmt.Errorf("alpha_pattern %v is not supported (one alpha for every layer)", c.AlphaPattern)
	case c.TargetModules.IsPattern && c.LayersToTransform != nil:
		return fmt.Errorf("layers_to_transform cannot be used when target_modules is a string")
	case c.TargetModules.IsPattern && c.LayersPattern != nil:
		return fmt.Errorf("layers_pattern cannot be used when target_modules is a string")
	case len(c.LayersPattern) > 0 && len(c.LayersToTransform) == 0:
		return fmt.Errorf("layers_pattern needs layers_to_transform")
	}
	for _, o := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"modules_to_save", c.ModulesToSave}, {"alora_invocation_tokens", c.AloraInvocationTokens},
		{"arrow_config", c.ArrowConfig}, {"kasa_config", c.KasaConfig},
		{"layer_replication", c.LayerReplication}, {"megatron_config", c.MegatronConfig},
		{"monteclora_config", c.MonteCLoRAConfig}, {"target_parameters", c.TargetParameters},
		{"trainable_token_indices", c.TrainableTokenIndices}, {"use_bdlora", c.UseBDLoRA},
		{"velora_config", c.VeLoRAConfig},
	} {
		if isSet(o.raw) {
			return fmt.Errorf("%s %s is not supported", o.name, compact(o.raw))
		}
	}
	return nil
}

// compact returns raw JSON without insignificant space.
func compact(r json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return string(r)
	}
	return buf.String()
}

// validateInit checks that Attach can initialise c's adapter.
func (c *LoraConfig) validateInit() error {
	switch c.InitLoraWeights {
	case "", InitDefault, InitRandom, InitGaussian:
		return nil
	}
	return fmt.Errorf("init_lora_weights %q is not supported (want true, false or \"gaussian\")", string(c.InitLoraWeights))
}

// clone returns a deep copy of c.
func (c *LoraConfig) clone() *LoraConfig {
	cc := *c
	cc.TargetModules.Names = slices.Clone(c.TargetModules.Names)
	cc.ExcludeModules.Names = slices.Clone(c.ExcludeModules.Names)
	cc.LayersToTransform = slices.Clone(c.LayersToTransform)
	cc.LayersPattern = slices.Clone(c.LayersPattern)
	cc.RankPattern = maps.Clone(c.RankPattern)
	cc.AlphaPattern = maps.Clone(c.AlphaPattern)
	cc.Extra = maps.Clone(c.Extra)
	return &cc
}
