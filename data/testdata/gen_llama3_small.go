//go:build ignore

// gen_llama3_small writes llama3-small.json: a small byte-level BPE
// tokenizer whose added tokens are Llama 3.1's special tokens, so that tests
// can run Llama 3 chat templates without the 9 MB tokenizer.json of a real
// Llama 3.
//
// It starts from package tokenizer's testdata/bytelevel-small.json (a real
// BPE model: 256 byte tokens and 2,000 merges trained on English text) and
// changes, to match Meta's Llama 3.1 tokenizer.json:
//
//   - the pre-tokenizer: Llama 3's Split regex (Isolated) then ByteLevel
//     without its own regex;
//   - the post-processor: ByteLevel then TemplateProcessing that puts
//     <|begin_of_text|> before the text;
//   - the added tokens: <|endoftext|> is replaced by Llama 3.1's first eleven
//     special tokens, in Llama 3.1's order, from id 2256 on (Llama 3 numbers
//     them from 128000).
//
// Run it from this directory: go run gen_llama3_small.go
package main

import (
	"encoding/json"
	"log"
	"os"
)

func main() {
	data, err := os.ReadFile("../../tokenizer/testdata/bytelevel-small.json")
	if err != nil {
		log.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(data, &tj); err != nil {
		log.Fatal(err)
	}
	specials := []string{
		"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
		"<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
		"<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
		"<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
	}
	const first = 2256
	var added []any
	for i, s := range specials {
		added = append(added, map[string]any{
			"id": first + i, "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true,
		})
	}
	tj["added_tokens"] = added
	tj["pre_tokenizer"] = map[string]any{
		"type": "Sequence",
		"pretokenizers": []any{
			map[string]any{
				"type":     "Split",
				"pattern":  map[string]any{"Regex": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`},
				"behavior": "Isolated",
				"invert":   false,
			},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		},
	}
	bos := map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}}
	tj["post_processor"] = map[string]any{
		"type": "Sequence",
		"processors": []any{
			map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
			map[string]any{
				"type":   "TemplateProcessing",
				"single": []any{bos, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
				"pair": []any{bos, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
					map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 1}},
					map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
				"special_tokens": map[string]any{"<|begin_of_text|>": map[string]any{
					"id": "<|begin_of_text|>", "ids": []int{first}, "tokens": []string{"<|begin_of_text|>"}}},
			},
		},
	}
	f, err := os.Create("llama3-small.json")
	if err != nil {
		log.Fatal(err)
	}
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tj); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
