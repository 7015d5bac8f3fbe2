package gguf_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/whet-ai/whet/formats/gguf"
)

// Write a small GGUF file, then read its metadata and a tensor back. Open
// does the same for a file on disk, mapping it into memory.
func Example() {
	var buf bytes.Buffer
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValueOf("llama")},
		{Key: "llama.block_count", Value: gguf.MustValueOf(uint32(5))},
		{Key: "tokenizer.ggml.tokens", Value: gguf.MustValueOf([]string{"<unk>", "<s>", "</s>"})},
	}
	// A 2x3 F16 matrix: 1, 2, 3 / -1, -2, -3.
	data := []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x42, 0x00, 0xbc, 0x00, 0xc0, 0x00, 0xc2}
	tensors := []gguf.TensorData{{Name: "w", Type: gguf.TypeF16, Shape: []int{2, 3}, Data: data}}
	if err := gguf.Write(&buf, 3, kvs, tensors); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Parse("example.gguf", buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	arch, _ := f.String("general.architecture")
	blocks, _ := f.Uint("llama.block_count")
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	fmt.Println(arch, blocks, tokens)
	if _, err := f.Float("llama.block_count"); err != nil {
		fmt.Println(err)
	}
	for _, t := range f.Tensors() {
		x, _ := f.Float32(t.Name)
		fmt.Println(t.Name, t.Type, t.Shape, t.Dims, t.Size, x)
	}
	// Output:
	// llama 5 [<unk> <s> </s>]
	// gguf example.gguf: metadata key "llama.block_count" is UINT32, not FLOAT32 or FLOAT64
	// w F16 [2 3] [3 2] 12 [1 2 3 -1 -2 -3]
}
