// Package hf finds and reads Hugging Face model directories without Python
// and without the network.
//
// Resolve turns a model name into a directory: a local path, or a repo id
// looked up in the local Hugging Face cache (models--ORG--NAME/snapshots/
// COMMIT, with branches and tags in refs/), laid out and located as
// huggingface_hub lays it out and locates it. Nothing is ever downloaded.
//
// A ModelDir then locates the files inside: config.json (parsed into
// Config, for the Llama family, with transformers' defaults and both the
// rope_scaling and the newer rope_parameters forms), generation_config.json,
// the safetensors weights (single, sharded or a PEFT adapter's), GGUF files,
// and the tokenizer files. Pickle checkpoints are refused, never loaded:
// nothing in a model directory is executed or unpickled.
package hf
