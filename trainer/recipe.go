package trainer

// Recipe is everything a training run needs, as a YAML file says it (see
// docs/recipes.md, which documents every key). Field tags are the YAML keys.
type Recipe struct {
	// Model is a Hugging Face model directory, a repo id in the local
	// Hugging Face cache, or a .gguf file.
	Model    string `yaml:"model"`
	Revision string `yaml:"revision"`

	Data DataRecipe `yaml:"data"`

	// Method is "lora" (adapters on a frozen base) or "full" (every
	// weight trained).
	Method string     `yaml:"method"`
	LoRA   LoRARecipe `yaml:"lora"`
	// InitAdapter is a PEFT adapter directory to continue training from.
	InitAdapter string `yaml:"init_adapter"`
	// Quantization quantises the frozen base as it loads (QLoRA).
	Quantization QuantRecipe `yaml:"quantization"`

	Optimizer OptimizerRecipe `yaml:"optimizer"`
	Schedule  ScheduleRecipe  `yaml:"schedule"`

	Epochs                    int     `yaml:"epochs"`
	MaxSteps                  int     `yaml:"max_steps"` // 0: as many as the epochs take
	MicroBatchSize            int     `yaml:"micro_batch_size"`
	GradientAccumulationSteps int     `yaml:"gradient_accumulation_steps"`
	MaxGradNorm               float64 `yaml:"max_grad_norm"` // 0: no clipping
	GradientCheckpointing     bool    `yaml:"gradient_checkpointing"`

	EvalSteps      int     `yaml:"eval_steps"` // 0: only at the end
	SaveSteps      int     `yaml:"save_steps"` // 0: only at the end
	SaveTotalLimit int     `yaml:"save_total_limit"`
	OutputDir      string  `yaml:"output_dir"`
	Seed           uint64  `yaml:"seed"`
	LoggingSteps   int     `yaml:"logging_steps"`
	NaNPolicy      string  `yaml:"nan_policy"`      // "stop" or "skip"
	MemoryLimitGB  float64 `yaml:"memory_limit_gb"` // 0: the machine's available memory

	Tracking TrackingRecipe `yaml:"tracking"`
}

// TrackingRecipe says where the run's parameters, metrics and artifacts go
// besides metrics.jsonl (always written).
type TrackingRecipe struct {
	// MLflow logs to MLflow: TrackingURI (else MLFLOW_TRACKING_URI), or a
	// local ./mlruns store when neither is set. Setting
	// MLFLOW_TRACKING_URI turns it on too.
	MLflow      bool   `yaml:"mlflow"`
	TrackingURI string `yaml:"tracking_uri"`
	Experiment  string `yaml:"experiment"`
	RunName     string `yaml:"run_name"`
	// TensorBoard writes event files to output_dir/runs.
	TensorBoard bool `yaml:"tensorboard"`
	// Plots draws loss.png (train and eval loss, LR) at each checkpoint
	// and at the end.
	Plots bool `yaml:"plots"`
}

// DataRecipe is the dataset section: files, format, masking, packing.
type DataRecipe struct {
	Files        []string          `yaml:"files"`
	Format       string            `yaml:"format"`
	Fields       map[string]string `yaml:"fields"`
	EvalFiles    []string          `yaml:"eval_files"`
	EvalFraction float64           `yaml:"eval_fraction"`
	SequenceLen  int               `yaml:"sequence_len"`
	Packing      bool              `yaml:"packing"`
	TrainOn      string            `yaml:"train_on"`
	Truncation   string            `yaml:"truncation"`
	PromptStyle  string            `yaml:"prompt_style"`
	ChatTemplate string            `yaml:"chat_template"`
	Shuffle      bool              `yaml:"shuffle"`
	SkipInvalid  bool              `yaml:"skip_invalid"`
}

// LoRARecipe is the adapter section.
type LoRARecipe struct {
	R                 int      `yaml:"r"`
	Alpha             float64  `yaml:"alpha"`
	Dropout           float64  `yaml:"dropout"`
	TargetModules     []string `yaml:"target_modules"` // names, or ["all-linear"]
	TargetRegex       string   `yaml:"target_regex"`
	LayersToTransform []int    `yaml:"layers_to_transform"`
	RSLoRA            bool     `yaml:"rslora"`
	DoRA              bool     `yaml:"dora"`
	Init              string   `yaml:"init"` // "default" (PEFT's) or "gaussian"
}

// QuantRecipe is the quantisation section: the frozen base's format.
type QuantRecipe struct {
	Type             string  `yaml:"type"` // "none", "nf4", "fp4" or "int8"
	DoubleQuant      bool    `yaml:"double_quant"`
	BlockSize        int     `yaml:"block_size"`
	OutlierThreshold float64 `yaml:"outlier_threshold"`
}

// OptimizerRecipe is the optimiser section.
type OptimizerRecipe struct {
	Name        string    `yaml:"name"` // "adamw", "adamw8bit" or "sgd"
	LR          float64   `yaml:"lr"`
	WeightDecay float64   `yaml:"weight_decay"`
	Betas       []float64 `yaml:"betas"`
	Eps         float64   `yaml:"eps"`
	Momentum    float64   `yaml:"momentum"`
	Nesterov    bool      `yaml:"nesterov"`
	// LoRAPlusRatio multiplies the learning rate of lora_B (LoRA+); 0 or 1
	// is plain LoRA.
	LoRAPlusRatio float64 `yaml:"lora_plus_ratio"`
}

// ScheduleRecipe is the learning-rate schedule section.
type ScheduleRecipe struct {
	Name        string  `yaml:"name"` // "constant", "linear" or "cosine"
	WarmupSteps int     `yaml:"warmup_steps"`
	WarmupRatio float64 `yaml:"warmup_ratio"`
	MinLR       float64 `yaml:"min_lr"`
}

// DefaultRecipe is the recipe every file starts from: the values a key
// takes when the file leaves it out.
func DefaultRecipe() Recipe {
	return Recipe{
		Data:         DataRecipe{SequenceLen: 512, Packing: true, TrainOn: "assistant", Shuffle: true},
		Method:       "lora",
		Quantization: QuantRecipe{Type: "none", BlockSize: 64},
		Tracking:     TrackingRecipe{Experiment: "whet", Plots: true},
		LoRA:         LoRARecipe{R: 16, Alpha: 32, Dropout: 0.05, TargetModules: []string{"all-linear"}, Init: "default"},
		Optimizer:    OptimizerRecipe{Name: "adamw", LR: 2e-4, Betas: []float64{0.9, 0.999}, Eps: 1e-8},
		Schedule:     ScheduleRecipe{Name: "cosine", WarmupRatio: 0.03},
		Epochs:       1, MicroBatchSize: 1, GradientAccumulationSteps: 1, MaxGradNorm: 1,
		SaveTotalLimit: 2, OutputDir: "./lora-out", Seed: 42, LoggingSteps: 1, NaNPolicy: "stop",
	}
}
