// Package models holds whet's model definitions, a registry of them keyed by
// Hugging Face's model_type, and their loading from Hugging Face directories
// and GGUF files.
//
// A model is a Go struct whose fields are its layers, each tagged with its
// checkpoint name (see nn.Params), so that reading the definition tells the
// checkpoint's layout. Weights keep the dtype they are stored in (a bf16
// checkpoint stays bf16 in memory) and ops convert them as they use them.
package models
