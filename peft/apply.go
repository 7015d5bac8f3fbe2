package peft

import "github.com/whet-ai/whet/backend"

// Apply loads the LoRA adapter in dir onto model's linear layers, frozen,
// in evaluation mode, and returns its config (Load with trainable false).
func Apply(b backend.Backend, model any, dir string) (*Config, error) {
	ad, err := Load(b, model, dir, false)
	if err != nil {
		return nil, err
	}
	return ad.Config, nil
}
