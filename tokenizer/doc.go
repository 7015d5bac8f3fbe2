// Package tokenizer loads Hugging Face tokenizer.json files and encodes and
// decodes text exactly as the Hugging Face tokenizers library (Rust) does,
// for the byte-pair-encoding tokenizers of the Llama 2, Llama 3, Mistral,
// Qwen2/Qwen3, GPT-2, DeepSeek and Gemma families.
//
// The pipeline is the Rust library's: added tokens (special tokens on the
// raw text, the others on the normalised text) are cut out first; the rest
// is normalised (NFC, NFKC, NFD, NFKD, Lowercase, Strip, StripAccents,
// Prepend, Append, Replace, Sequence), pre-tokenized (ByteLevel, Split with
// any behaviour, Metaspace, Digits, Sequence), encoded by the BPE model
// (merges in either form, byte_fallback, ignore_merges, unk_token and
// fuse_unk, continuing_subword_prefix, end_of_word_suffix) and
// post-processed (TemplateProcessing, ByteLevel, Sequence). Decoding runs
// the decoders (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace,
// BPEDecoder, Sequence).
//
// Regex patterns are run by regexp2 with the Oniguruma iteration rules of
// the Rust library; the GPT-2, Llama 3 and Qwen2 patterns use hand-written
// splitters that are checked against regexp2.
//
// Anything else (WordPiece, Unigram or WordLevel models, BERT components,
// Precompiled normalizers, BPE dropout, truncation or padding, options this
// package does not know) is refused by Load and Parse with an error naming
// the file and the component, never encoded differently.
//
// The tests compare every supported tokenizer with golden output of the
// official tokenizers Node binding (testdata/oracle), and, when the Node
// packages are installed, with the binding itself.
package tokenizer
