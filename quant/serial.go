package quant

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/tensor"
)

// The keys bitsandbytes adds after a 4-bit weight's name ("...q_proj.weight"
// + ".absmax"): Linear4bit._save_to_state_dict writes the weight's
// QuantState.as_dict(packed=True) under "<name>.".
const (
	SuffixAbsmax         = ".absmax"           // F32 [blocks], or U8 [blocks] double-quantised
	SuffixQuantMap       = ".quant_map"        // F32 [16]
	SuffixNestedAbsmax   = ".nested_absmax"    // F32 [ceil(blocks/256)]
	SuffixNestedQuantMap = ".nested_quant_map" // F32 [256]
	// SuffixQuantState + "nf4" or "fp4" is the U8 tensor holding the JSON of
	// the non-tensor state (quant_type, blocksize, dtype, shape,
	// nested_blocksize, nested_dtype, nested_offset).
	SuffixQuantState = ".quant_state.bitsandbytes__"
)

// The keys of an int8 weight ("<prefix>weight"), as bitsandbytes'
// Linear8bitLt saves them and transformers reads them
// (param_name.replace("weight", "SCB")).
const (
	Int8Scales = "SCB"           // F32 [rows]: each row's absmax
	Int8Format = "weight_format" // U8 scalar: 0, row-major
)

// Getter looks a checkpoint tensor up by key, returning whether it exists.
type Getter func(key string) (t safetensors.Tensor, ok bool, err error)

// Reader is what FileGetter reads: a *safetensors.File or a
// *safetensors.Sharded.
type Reader interface {
	Info(name string) (safetensors.TensorInfo, bool)
	Raw(name string) ([]byte, error)
}

// FileGetter returns a Getter over an open safetensors file or sharded
// checkpoint. Its tensors alias the file's memory.
func FileGetter(r Reader) Getter {
	return func(key string) (safetensors.Tensor, bool, error) {
		info, ok := r.Info(key)
		if !ok {
			return safetensors.Tensor{}, false, nil
		}
		raw, err := r.Raw(key)
		if err != nil {
			return safetensors.Tensor{}, true, err
		}
		return safetensors.Tensor{Name: key, DType: info.DType, Shape: info.Shape, Data: raw}, true, nil
	}
}

// TensorsGetter returns a Getter over tensors in memory (what Encode
// returns).
func TensorsGetter(ts []safetensors.Tensor) Getter {
	m := make(map[string]safetensors.Tensor, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	return func(key string) (safetensors.Tensor, bool, error) {
		t, ok := m[key]
		return t, ok, nil
	}
}

// CompanionOf reports whether a checkpoint key is one of the companion
// tensors of a quantised weight (absmax, quant_map, quant_state, SCB, ...)
// rather than a weight, and returns that weight's name.
func CompanionOf(key string) (weight string, ok bool) {
	for _, s := range []string{SuffixAbsmax, SuffixQuantMap, SuffixNestedAbsmax, SuffixNestedQuantMap,
		SuffixQuantState + "nf4", SuffixQuantState + "fp4"} {
		if w, ok := strings.CutSuffix(key, s); ok && w != "" {
			return w, true
		}
	}
	for _, s := range []string{Int8Scales, Int8Format} {
		if p, ok := strings.CutSuffix(key, s); ok && (p == "" || strings.HasSuffix(p, ".")) {
			return p + "weight", true
		}
	}
	return "", false
}

// Encode returns the tensors bitsandbytes and transformers write for the
// quantised weight name (a Hugging Face weight name such as
// "model.layers.0.self_attn.q_proj.weight"):
//
// 4-bit: name, U8 [ceil(n/2), 1], the packed codes (first element of a pair
// in the high nibble); name.absmax, F32 [blocks] (U8 [blocks] when
// double-quantised); name.quant_map, F32 [16]; with double quantisation
// name.nested_absmax, F32 [ceil(blocks/256)], and name.nested_quant_map, F32
// [256]; and name.quant_state.bitsandbytes__nf4 (or __fp4), U8, the bytes of
// the JSON {"quant_type": ..., "blocksize": ..., "dtype": ..., "shape":
// [rows, cols], "nested_blocksize": ..., "nested_dtype": "float32",
// "nested_offset": ...} as Python's json.dumps writes it.
//
// int8 (name must end in "weight"; prefix is name without it): name, I8
// [rows, cols]; prefixSCB, F32 [rows]; prefixweight_format, U8 scalar 0
// (row-major). A weight with outlier columns is an error: the format has no
// place for them.
func Encode(name string, w *backend.QuantWeight, b backend.Backend) ([]safetensors.Tensor, error) {
	if w == nil || b == nil {
		return nil, fmt.Errorf("quant: encode %s: missing weight or back end", name)
	}
	if name == "" {
		return nil, fmt.Errorf("quant: encode: empty weight name")
	}
	switch w.Kind {
	case backend.QuantNF4, backend.QuantFP4:
		return encode4(name, w, b)
	case backend.QuantInt8:
		return encodeInt8(name, w, b)
	}
	return nil, fmt.Errorf("quant: encode %s: unsupported format %v", name, w.Kind)
}

// hostBytes copies t (which must have n elements of dtype dt) to the host.
func hostBytes(b backend.Backend, key, field string, t *tensor.Tensor, dt tensor.DType, n int) ([]byte, error) {
	if t == nil {
		return nil, fmt.Errorf("quant: encode %s: %s is missing", key, field)
	}
	if t.DType() != dt || t.Len() != n {
		return nil, fmt.Errorf("quant: encode %s: %s is %v, want %v with %d elements", key, field, t, dt, n)
	}
	out := make([]byte, t.Bytes())
	if err := b.CopyToHost(out, t); err != nil {
		return nil, fmt.Errorf("quant: encode %s: %s: %w", key, field, err)
	}
	return out, nil
}

func encode4(name string, w *backend.QuantWeight, b backend.Backend) ([]safetensors.Tensor, error) {
	n := w.Elements()
	if w.BlockSize <= 0 {
		return nil, fmt.Errorf("quant: encode %s: block size %d", name, w.BlockSize)
	}
	blocks := (n + w.BlockSize - 1) / w.BlockSize
	codes, err := hostBytes(b, name, "Codes", w.Codes, tensor.U8, (n+1)/2)
	if err != nil {
		return nil, err
	}
	ts := []safetensors.Tensor{{Name: name, DType: safetensors.U8, Shape: []int{(n + 1) / 2, 1}, Data: codes}}
	if w.QAbsmax == nil {
		absmax, err := hostBytes(b, name+SuffixAbsmax, "Absmax", w.Absmax, tensor.F32, blocks)
		if err != nil {
			return nil, err
		}
		ts = append(ts, safetensors.Tensor{Name: name + SuffixAbsmax, DType: safetensors.F32, Shape: []int{blocks}, Data: absmax})
	} else {
		if w.NestedBlockSize <= 0 {
			return nil, fmt.Errorf("quant: encode %s: nested block size %d", name, w.NestedBlockSize)
		}
		qabs, err := hostBytes(b, name+SuffixAbsmax, "QAbsmax", w.QAbsmax, tensor.U8, blocks)
		if err != nil {
			return nil, err
		}
		nb := (blocks + w.NestedBlockSize - 1) / w.NestedBlockSize
		nabs, err := hostBytes(b, name+SuffixNestedAbsmax, "NestedAbsmax", w.NestedAbsmax, tensor.F32, nb)
		if err != nil {
			return nil, err
		}
		ncode, err := hostBytes(b, name+SuffixNestedQuantMap, "NestedCode", w.NestedCode, tensor.F32, 256)
		if err != nil {
			return nil, err
		}
		ts = append(ts,
			safetensors.Tensor{Name: name + SuffixAbsmax, DType: safetensors.U8, Shape: []int{blocks}, Data: qabs},
			safetensors.Tensor{Name: name + SuffixNestedAbsmax, DType: safetensors.F32, Shape: []int{nb}, Data: nabs},
			safetensors.Tensor{Name: name + SuffixNestedQuantMap, DType: safetensors.F32, Shape: []int{256}, Data: ncode})
	}
	qmap, err := hostBytes(b, name+SuffixQuantMap, "Code", w.Code, tensor.F32, 16)
	if err != nil {
		return nil, err
	}
	ts = append(ts, safetensors.Tensor{Name: name + SuffixQuantMap, DType: safetensors.F32, Shape: []int{16}, Data: qmap})
	js, err := quantStateJSON(w)
	if err != nil {
		return nil, fmt.Errorf("quant: encode %s: %w", name, err)
	}
	key := name + SuffixQuantState + w.Kind.String()
	return append(ts, safetensors.Tensor{Name: key, DType: safetensors.U8, Shape: []int{len(js)}, Data: js}), nil
}

// torchDTypes maps tensor dtypes to the names bitsandbytes writes
// (str(torch_dtype) without "torch.").
var torchDTypes = map[tensor.DType]string{
	tensor.F32: "float32", tensor.BF16: "bfloat16", tensor.F16: "float16", tensor.F64: "float64",
}

// quantStateJSON is the packed quant state as bitsandbytes' QuantState.as_dict
// and pack_dict_to_tensor write it: json.dumps of the non-tensor items in
// their insertion order, with Python's ", " and ": " separators and float
// repr.
func quantStateJSON(w *backend.QuantWeight) ([]byte, error) {
	dt := tensor.F32
	if w.OrigDType != tensor.Invalid {
		dt = w.OrigDType
	}
	name, ok := torchDTypes[dt]
	if !ok {
		return nil, fmt.Errorf("original dtype %v has no torch name", w.OrigDType)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"quant_type": %q, "blocksize": %d, "dtype": %q, "shape": [%d, %d]`,
		w.Kind.String(), w.BlockSize, name, w.Rows, w.Cols)
	if w.QAbsmax != nil {
		fmt.Fprintf(&sb, `, "nested_blocksize": %d, "nested_dtype": "float32", "nested_offset": %s`,
			w.NestedBlockSize, pyFloat(float64(float32(w.Offset))))
	}
	sb.WriteString("}")
	return []byte(sb.String()), nil
}

// pyFloat formats x as Python's repr (and json.dumps) does: the shortest
// digits that read back as x, in positional notation for decimal exponents
// from -4 to 15 (with ".0" when integral) and as d.ddde±XX otherwise.
func pyFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	case x == 0:
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(x, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

func encodeInt8(name string, w *backend.QuantWeight, b backend.Backend) ([]safetensors.Tensor, error) {
	prefix, ok := strings.CutSuffix(name, "weight")
	if !ok {
		return nil, fmt.Errorf("quant: encode %s: an int8 weight's name must end in \"weight\" (its scales are saved as the name with SCB in its place)", name)
	}
	if w.OutlierCols != nil && w.OutlierCols.Len() > 0 {
		return nil, fmt.Errorf("quant: encode %s: %d outlier columns, which bitsandbytes' int8 checkpoints cannot hold; quantise without an outlier threshold to save it",
			name, w.OutlierCols.Len())
	}
	codes, err := hostBytes(b, name, "Codes", w.Codes, tensor.U8, w.Elements())
	if err != nil {
		return nil, err
	}
	scb, err := hostBytes(b, prefix+Int8Scales, "Absmax", w.Absmax, tensor.F32, w.Rows)
	if err != nil {
		return nil, err
	}
	return []safetensors.Tensor{
		{Name: name, DType: safetensors.I8, Shape: []int{w.Rows, w.Cols}, Data: codes},
		{Name: prefix + Int8Scales, DType: safetensors.F32, Shape: []int{w.Rows}, Data: scb},
		{Name: prefix + Int8Format, DType: safetensors.U8, Shape: []int{}, Data: []byte{0}},
	}, nil
}

// Decode reads the quantised weight name from a checkpoint, recognising it by
// its companion keys (see Encode): name.quant_state.bitsandbytes__nf4 or
// __fp4 for a 4-bit weight, the SCB key for an int8 one. ok reports whether
// name is a quantised weight; it is false, with a nil error, for a plain
// weight (or a missing one). Every size is checked against the quant state,
// and an error names the offending tensor. The weight's tensors are
// allocated on b. An int8 checkpoint does not record the original dtype:
// OrigDType is then F16, the dtype bitsandbytes quantises int8 weights from.
func Decode(b backend.Backend, name string, get Getter) (w *backend.QuantWeight, ok bool, err error) {
	if get == nil || b == nil {
		return nil, false, fmt.Errorf("quant: decode %s: no tensors to read or no back end", name)
	}
	if prefix, ok := strings.CutSuffix(name, "weight"); ok {
		scb, found, err := get(prefix + Int8Scales)
		if err != nil {
			return nil, true, fmt.Errorf("quant: decode %s: %w", prefix+Int8Scales, err)
		}
		if found {
			w, err := decodeInt8(b, name, prefix, scb, get)
			return w, true, err
		}
	}
	var qs safetensors.Tensor
	kind := backend.QuantNone
	for _, k := range []backend.QuantKind{backend.QuantNF4, backend.QuantFP4} {
		key := name + SuffixQuantState + k.String()
		t, found, err := get(key)
		if err != nil {
			return nil, true, fmt.Errorf("quant: decode %s: %w", key, err)
		}
		if !found {
			continue
		}
		if kind != backend.QuantNone {
			return nil, true, fmt.Errorf("quant: decode %s: both %s and %s are present", name, qs.Name, key)
		}
		qs, kind = t, k
		qs.Name = key
	}
	if kind == backend.QuantNone {
		if _, found, err := get(name + SuffixAbsmax); err != nil || found {
			if err == nil {
				err = fmt.Errorf("it has no %snf4 or %sfp4", SuffixQuantState, SuffixQuantState)
			}
			return nil, true, fmt.Errorf("quant: decode %s: %s is present but %w", name, name+SuffixAbsmax, err)
		}
		if t, found, err := get(name); err == nil && found && t.DType == safetensors.I8 {
			return nil, true, fmt.Errorf("quant: decode %s: an I8 weight without its scales %s", name, strings.TrimSuffix(name, "weight")+Int8Scales)
		}
		return nil, false, nil
	}
	w, err = decode4(b, name, kind, qs, get)
	return w, true, err
}

// quantState is the JSON of a packed 4-bit quant state.
type quantState struct {
	QuantType       string          `json:"quant_type"`
	BlockSize       *int            `json:"blocksize"`
	DType           string          `json:"dtype"`
	Shape           []int           `json:"shape"`
	NestedBlockSize *int            `json:"nested_blocksize"`
	NestedDType     string          `json:"nested_dtype"`
	NestedOffset    json.RawMessage `json:"nested_offset"`
}

// pyNonFinite matches the NaN and Infinity literals Python's json.dumps
// writes for non-finite floats, which are not JSON.
var pyNonFinite = regexp.MustCompile(`(:\s*)(-?Infinity|NaN)\b`)

func parseQuantState(key string, data []byte) (*quantState, error) {
	data = pyNonFinite.ReplaceAll(data, []byte(`$1"$2"`))
	var st quantState
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("quant: tensor %s: quant state JSON: %w", key, err)
	}
	return &st, nil
}

// parseOffset reads nested_offset: a JSON number, or a string for the
// non-finite values.
func parseOffset(raw json.RawMessage) (float64, error) {
	s := strings.TrimSpace(string(raw))
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	return strconv.ParseFloat(s, 64)
}

// checkStored checks that a stored tensor has dtype dt and count elements.
func checkStored(key string, t safetensors.Tensor, dt safetensors.Dtype, count int) error {
	if t.DType != dt {
		return fmt.Errorf("quant: tensor %s is %v, want %v", key, t.DType, dt)
	}
	n, err := tensor.NumElements(t.Shape)
	if err != nil || n != count || len(t.Data) != count*dt.Bits()/8 {
		return fmt.Errorf("quant: tensor %s has shape %v and %d bytes, want %d elements of %v", key, t.Shape, len(t.Data), count, dt)
	}
	return nil
}

// need gets a required companion tensor.
func need(get Getter, weight, key string) (safetensors.Tensor, error) {
	t, found, err := get(key)
	if err != nil {
		return t, fmt.Errorf("quant: decode %s: %w", key, err)
	}
	if !found {
		return t, fmt.Errorf("quant: decode %s: tensor %s is missing", weight, key)
	}
	return t, nil
}

// upload copies raw bytes into a new tensor on b.
func upload(b backend.Backend, key string, dt tensor.DType, raw []byte, shape ...int) (*tensor.Tensor, error) {
	t, err := b.Alloc(dt, shape...)
	if err != nil {
		return nil, fmt.Errorf("quant: decode %s: %w", key, err)
	}
	if err := b.CopyFromHost(t, raw); err != nil {
		return nil, fmt.Errorf("quant: decode %s: %w", key, err)
	}
	return t, nil
}

// maxDecodeElements bounds the element count a quant state may claim, so
// that a corrupt one cannot make Decode allocate without limit before the
// sizes of the tensors are compared (2^40 elements is 512 GiB of codes).
const maxDecodeElements = 1 << 40

// maxDecodeBlock bounds the block sizes a quant state may give.
const maxDecodeBlock = 1 << 30

func decode4(b backend.Backend, name string, kind backend.QuantKind, qs safetensors.Tensor, get Getter) (*backend.QuantWeight, error) {
	st, err := parseQuantState(qs.Name, qs.Data)
	if err != nil {
		return nil, err
	}
	if st.QuantType != kind.String() {
		return nil, fmt.Errorf("quant: tensor %s: quant_type %q, want %q", qs.Name, st.QuantType, kind.String())
	}
	if st.BlockSize == nil || *st.BlockSize <= 0 || *st.BlockSize%2 != 0 || *st.BlockSize > maxDecodeBlock {
		return nil, fmt.Errorf("quant: tensor %s: blocksize %v, want a positive even number", qs.Name, jsonInt(st.BlockSize))
	}
	if len(st.Shape) != 2 {
		return nil, fmt.Errorf("quant: tensor %s: shape %v, want [rows, cols]", qs.Name, st.Shape)
	}
	n, err := tensor.NumElements(st.Shape)
	if err != nil || n > maxDecodeElements {
		return nil, fmt.Errorf("quant: tensor %s: shape %v is not a valid weight shape", qs.Name, st.Shape)
	}
	w := &backend.QuantWeight{Kind: kind, Rows: st.Shape[0], Cols: st.Shape[1], BlockSize: *st.BlockSize}
	w.OrigDType = tensor.Invalid
	for dt, s := range torchDTypes {
		if s == st.DType {
			w.OrigDType = dt
		}
	}
	if w.OrigDType == tensor.Invalid {
		return nil, fmt.Errorf("quant: tensor %s: dtype %q, want float32, bfloat16, float16 or float64", qs.Name, st.DType)
	}
	blocks := (n + w.BlockSize - 1) / w.BlockSize

	packed, err := need(get, name, name)
	if err != nil {
		return nil, err
	}
	pn, err := tensor.NumElements(packed.Shape)
	if bits := packed.DType.Bits(); err != nil || bits == 0 || bits%8 != 0 || len(packed.Data) != (n+1)/2 ||
		len(packed.Data)%(bits/8) != 0 || pn != len(packed.Data)/(bits/8) {
		return nil, fmt.Errorf("quant: tensor %s is %v %v (%d bytes), want %d bytes of packed 4-bit codes for shape %v",
			name, packed.DType, packed.Shape, len(packed.Data), (n+1)/2, st.Shape)
	}
	qmap, err := need(get, name, name+SuffixQuantMap)
	if err != nil {
		return nil, err
	}
	if err := checkStored(name+SuffixQuantMap, qmap, safetensors.F32, 16); err != nil {
		return nil, err
	}
	absmax, err := need(get, name, name+SuffixAbsmax)
	if err != nil {
		return nil, err
	}
	nabs, hasNA, err := get(name + SuffixNestedAbsmax)
	if err != nil {
		return nil, fmt.Errorf("quant: decode %s: %w", name+SuffixNestedAbsmax, err)
	}
	ncode, hasNC, err := get(name + SuffixNestedQuantMap)
	if err != nil {
		return nil, fmt.Errorf("quant: decode %s: %w", name+SuffixNestedQuantMap, err)
	}
	nested := hasNA || hasNC || st.NestedBlockSize != nil || len(st.NestedOffset) > 0
	if nested {
		switch {
		case !hasNA:
			return nil, fmt.Errorf("quant: decode %s: tensor %s is missing", name, name+SuffixNestedAbsmax)
		case !hasNC:
			return nil, fmt.Errorf("quant: decode %s: tensor %s is missing", name, name+SuffixNestedQuantMap)
		case st.NestedBlockSize == nil || *st.NestedBlockSize <= 0 || *st.NestedBlockSize > maxDecodeBlock:
			return nil, fmt.Errorf("quant: tensor %s: nested_blocksize %v, want a positive number", qs.Name, jsonInt(st.NestedBlockSize))
		case len(st.NestedOffset) == 0:
			return nil, fmt.Errorf("quant: tensor %s: nested_offset is missing", qs.Name)
		case st.NestedDType != "" && st.NestedDType != "float32":
			return nil, fmt.Errorf("quant: tensor %s: nested_dtype %q, want float32", qs.Name, st.NestedDType)
		}
		if w.Offset, err = parseOffset(st.NestedOffset); err != nil {
			return nil, fmt.Errorf("quant: tensor %s: nested_offset %s is not a number", qs.Name, st.NestedOffset)
		}
		w.NestedBlockSize = *st.NestedBlockSize
		nb := (blocks + w.NestedBlockSize - 1) / w.NestedBlockSize
		if err := checkStored(name+SuffixAbsmax, absmax, safetensors.U8, blocks); err != nil {
			return nil, err
		}
		if err := checkStored(name+SuffixNestedAbsmax, nabs, safetensors.F32, nb); err != nil {
			return nil, err
		}
		if err := checkStored(name+SuffixNestedQuantMap, ncode, safetensors.F32, 256); err != nil {
			return nil, err
		}
		if w.QAbsmax, err = upload(b, name+SuffixAbsmax, tensor.U8, absmax.Data, blocks); err != nil {
			return nil, err
		}
		if w.NestedAbsmax, err = upload(b, name+SuffixNestedAbsmax, tensor.F32, nabs.Data, nb); err != nil {
			return nil, err
		}
		if w.NestedCode, err = upload(b, name+SuffixNestedQuantMap, tensor.F32, ncode.Data, 256); err != nil {
			return nil, err
		}
	} else {
		if err := checkStored(name+SuffixAbsmax, absmax, safetensors.F32, blocks); err != nil {
			return nil, err
		}
		if w.Absmax, err = upload(b, name+SuffixAbsmax, tensor.F32, absmax.Data, blocks); err != nil {
			return nil, err
		}
	}
	if w.Code, err = upload(b, name+SuffixQuantMap, tensor.F32, qmap.Data, 16); err != nil {
		return nil, err
	}
	if w.Codes, err = upload(b, name, tensor.U8, packed.Data, (n+1)/2); err != nil {
		return nil, err
	}
	return w, nil
}

func jsonInt(p *int) any {
	if p == nil {
		return "missing"
	}
	return *p
}

func decodeInt8(b backend.Backend, name, prefix string, scb safetensors.Tensor, get Getter) (*backend.QuantWeight, error) {
	scbKey := prefix + Int8Scales
	wt, err := need(get, name, name)
	if err != nil {
		return nil, err
	}
	if wt.DType != safetensors.I8 && wt.DType != safetensors.U8 {
		return nil, fmt.Errorf("quant: tensor %s is %v, want I8 codes (its scales %s are present)", name, wt.DType, scbKey)
	}
	if len(wt.Shape) != 2 {
		return nil, fmt.Errorf("quant: tensor %s has shape %v, want [rows, cols]", name, wt.Shape)
	}
	rows, cols := wt.Shape[0], wt.Shape[1]
	n, err := tensor.NumElements(wt.Shape)
	if err != nil || len(wt.Data) != n {
		return nil, fmt.Errorf("quant: tensor %s has shape %v and %d bytes", name, wt.Shape, len(wt.Data))
	}
	if err := checkStored(scbKey, scb, safetensors.F32, rows); err != nil {
		return nil, err
	}
	if f, found, err := get(prefix + Int8Format); err != nil {
		return nil, fmt.Errorf("quant: decode %s: %w", prefix+Int8Format, err)
	} else if found {
		v, err := formatValue(f)
		if err != nil {
			return nil, fmt.Errorf("quant: tensor %s: %w", prefix+Int8Format, err)
		}
		if v != 0 {
			return nil, fmt.Errorf("quant: tensor %s: weight format %d (%s), but only row-major (0) int8 weights are supported",
				prefix+Int8Format, v, map[int64]string{1: "col32", 2: "col_turing", 3: "col_ampere"}[v])
		}
	}
	w := &backend.QuantWeight{Kind: backend.QuantInt8, Rows: rows, Cols: cols, OrigDType: tensor.F16}
	if w.Codes, err = upload(b, name, tensor.U8, wt.Data, n); err != nil {
		return nil, err
	}
	if w.Absmax, err = upload(b, scbKey, tensor.F32, scb.Data, rows); err != nil {
		return nil, err
	}
	return w, nil
}

// formatValue reads the one integer of a weight_format tensor.
func formatValue(t safetensors.Tensor) (int64, error) {
	n, err := tensor.NumElements(t.Shape)
	if err != nil || n != 1 || len(t.Data) != t.DType.Bits()/8 {
		return 0, fmt.Errorf("shape %v (%d bytes), want one integer", t.Shape, len(t.Data))
	}
	switch t.DType {
	case safetensors.U8:
		return int64(t.Data[0]), nil
	case safetensors.I8:
		return int64(int8(t.Data[0])), nil
	case safetensors.I32:
		return int64(int32(binary.LittleEndian.Uint32(t.Data))), nil
	case safetensors.I64:
		return int64(binary.LittleEndian.Uint64(t.Data)), nil
	}
	return 0, fmt.Errorf("dtype %v, want an integer", t.DType)
}

// QuantizationConfig returns the quantization_config block transformers
// writes into config.json for a checkpoint quantised with bitsandbytes
// (BitsAndBytesConfig.to_dict()); computeDType is bnb_4bit_compute_dtype
// ("bfloat16", "float16" or "float32").
func QuantizationConfig(kind backend.QuantKind, opt Options, computeDType string) (map[string]any, error) {
	threshold := 6.0
	if opt.OutlierThreshold > 0 {
		threshold = opt.OutlierThreshold
	}
	if computeDType == "" {
		computeDType = "float32"
	}
	four := kind == backend.QuantNF4 || kind == backend.QuantFP4
	if !four && kind != backend.QuantInt8 {
		return nil, fmt.Errorf("quant: unsupported format %v", kind)
	}
	quantType := "fp4" // transformers' default when 4-bit is off
	if kind == backend.QuantNF4 {
		quantType = "nf4"
	}
	return map[string]any{
		"_load_in_4bit":                    four,
		"_load_in_8bit":                    !four,
		"bnb_4bit_compute_dtype":           computeDType,
		"bnb_4bit_quant_storage":           "uint8",
		"bnb_4bit_quant_type":              quantType,
		"bnb_4bit_use_double_quant":        four && opt.DoubleQuant,
		"llm_int8_enable_fp32_cpu_offload": false,
		"llm_int8_has_fp16_weight":         false,
		"llm_int8_skip_modules":            nil,
		"llm_int8_threshold":               json.Number(pyFloat(threshold)),
		"load_in_4bit":                     four,
		"load_in_8bit":                     !four,
		"quant_method":                     "bitsandbytes",
	}, nil
}
