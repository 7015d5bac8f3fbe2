package gguf

import "fmt"

// GGMLType is the element type of a tensor in a GGUF file: ggml's
// enum ggml_type. Quantised types store their elements in blocks of
// BlockSize elements that take TypeSize bytes each.
type GGMLType uint32

// The ggml tensor types, with ggml's numbering. Ids that ggml has since
// removed are listed too, so that a file naming one gets a clear message.
const (
	TypeF32        GGMLType = 0
	TypeF16        GGMLType = 1
	TypeQ4_0       GGMLType = 2
	TypeQ4_1       GGMLType = 3
	TypeQ4_2       GGMLType = 4 // removed from ggml before GGUF existed
	TypeQ4_3       GGMLType = 5 // removed from ggml before GGUF existed
	TypeQ5_0       GGMLType = 6
	TypeQ5_1       GGMLType = 7
	TypeQ8_0       GGMLType = 8
	TypeQ8_1       GGMLType = 9
	TypeQ2_K       GGMLType = 10
	TypeQ3_K       GGMLType = 11
	TypeQ4_K       GGMLType = 12
	TypeQ5_K       GGMLType = 13
	TypeQ6_K       GGMLType = 14
	TypeQ8_K       GGMLType = 15
	TypeIQ2_XXS    GGMLType = 16
	TypeIQ2_XS     GGMLType = 17
	TypeIQ3_XXS    GGMLType = 18
	TypeIQ1_S      GGMLType = 19
	TypeIQ4_NL     GGMLType = 20
	TypeIQ3_S      GGMLType = 21
	TypeIQ2_S      GGMLType = 22
	TypeIQ4_XS     GGMLType = 23
	TypeI8         GGMLType = 24
	TypeI16        GGMLType = 25
	TypeI32        GGMLType = 26
	TypeI64        GGMLType = 27
	TypeF64        GGMLType = 28
	TypeIQ1_M      GGMLType = 29
	TypeBF16       GGMLType = 30
	TypeQ4_0_4_4   GGMLType = 31 // removed from ggml: Q4_0 repacked for ARM; now repacked at load time
	TypeQ4_0_4_8   GGMLType = 32 // removed, as TypeQ4_0_4_4
	TypeQ4_0_8_8   GGMLType = 33 // removed, as TypeQ4_0_4_4
	TypeTQ1_0      GGMLType = 34
	TypeTQ2_0      GGMLType = 35
	TypeIQ4_NL_4_4 GGMLType = 36 // removed from ggml: IQ4_NL repacked; now repacked at load time
	TypeIQ4_NL_4_8 GGMLType = 37 // removed, as TypeIQ4_NL_4_4
	TypeIQ4_NL_8_8 GGMLType = 38 // removed, as TypeIQ4_NL_4_4
	TypeMXFP4      GGMLType = 39
	TypeNVFP4      GGMLType = 40
	TypeQ1_0       GGMLType = 41
	TypeQ2_0       GGMLType = 42
)

// typeInfo is what the reader knows of one ggml type.
type typeInfo struct {
	name      string
	blockSize int // elements per block; 0 where the size is unknown
	typeSize  int // bytes per block
}

// qkK is the super-block size of the k-quants and most i-quants.
const qkK = 256

// typeInfos is indexed by GGMLType. Block and type sizes follow ggml's
// type traits (block_* structs in ggml-common.h).
var typeInfos = [...]typeInfo{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 2 + 16},
	TypeQ4_1:    {"Q4_1", 32, 2 + 2 + 16},
	TypeQ4_2:    {"Q4_2", 0, 0},
	TypeQ4_3:    {"Q4_3", 0, 0},
	TypeQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	TypeQ5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	TypeQ8_0:    {"Q8_0", 32, 2 + 32},
	TypeQ8_1:    {"Q8_1", 32, 2 + 2 + 32},
	TypeQ2_K:    {"Q2_K", qkK, qkK/16 + qkK/4 + 2 + 2},
	TypeQ3_K:    {"Q3_K", qkK, qkK/8 + qkK/4 + 12 + 2},
	TypeQ4_K:    {"Q4_K", qkK, 2 + 2 + 12 + qkK/2},
	TypeQ5_K:    {"Q5_K", qkK, 2 + 2 + 12 + qkK/8 + qkK/2},
	TypeQ6_K:    {"Q6_K", qkK, qkK/2 + qkK/4 + qkK/16 + 2},
	TypeQ8_K:    {"Q8_K", qkK, 4 + qkK + qkK/16*2},
	TypeIQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/4},
	TypeIQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/4 + qkK/32},
	TypeIQ3_XXS: {"IQ3_XXS", qkK, 2 + qkK/4 + qkK/8},
	TypeIQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16},
	TypeIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	TypeIQ3_S:   {"IQ3_S", qkK, 2 + qkK/4 + qkK/8 + qkK/32 + 4},
	TypeIQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16},
	TypeIQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/2 + qkK/64},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32},
	TypeBF16:    {"BF16", 1, 2},
	// The repacked types interleaved whole Q4_0 / IQ4_NL blocks, so they
	// took as many bytes per element as those.
	TypeQ4_0_4_4:   {"Q4_0_4_4", 32, 2 + 16},
	TypeQ4_0_4_8:   {"Q4_0_4_8", 32, 2 + 16},
	TypeQ4_0_8_8:   {"Q4_0_8_8", 32, 2 + 16},
	TypeTQ1_0:      {"TQ1_0", qkK, 2 + 4*13},
	TypeTQ2_0:      {"TQ2_0", qkK, 2 + qkK/4},
	TypeIQ4_NL_4_4: {"IQ4_NL_4_4", 32, 2 + 16},
	TypeIQ4_NL_4_8: {"IQ4_NL_4_8", 32, 2 + 16},
	TypeIQ4_NL_8_8: {"IQ4_NL_8_8", 32, 2 + 16},
	TypeMXFP4:      {"MXFP4", 32, 1 + 16},
	TypeNVFP4:      {"NVFP4", 64, 4 + 32},
	TypeQ1_0:       {"Q1_0", 128, 2 + 16},
	TypeQ2_0:       {"Q2_0", 64, 2 + 16},
}

func (t GGMLType) info() (typeInfo, bool) {
	if uint64(t) >= uint64(len(typeInfos)) {
		return typeInfo{}, false
	}
	return typeInfos[t], true
}

// String returns ggml's name for the type in upper case ("F32", "Q4_0",
// "Q6_K", ...), or "GGMLType(N)" for an id this package does not know.
func (t GGMLType) String() string {
	if ti, ok := t.info(); ok {
		return ti.name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// BlockSize is the number of elements in one block of the type (1 for
// F32, F16, BF16 and the integer types; 32 for Q4_0 and Q8_0; 256 for the
// k-quants), or 0 for an unknown type or one whose layout is unknown.
func (t GGMLType) BlockSize() int {
	ti, _ := t.info()
	return ti.blockSize
}

// TypeSize is the number of bytes one block of the type takes, or 0 where
// BlockSize is 0.
func (t GGMLType) TypeSize() int {
	ti, _ := t.info()
	return ti.typeSize
}

// Known reports whether the type has a known name and block layout, so
// that the size of a tensor of this type can be computed.
func (t GGMLType) Known() bool { return t.BlockSize() > 0 }

// CanDequantize reports whether (*File).Float32 can convert a tensor of
// this type to float32.
func (t GGMLType) CanDequantize() bool {
	_, ok := dequantizers[t]
	return ok
}
