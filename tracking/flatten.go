package tracking

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxFlattenDepth bounds the nesting FlattenParams follows, so a cyclic
// value ends instead of recursing forever.
const maxFlattenDepth = 32

// FlattenParams turns a nested value into parameters with dotted keys: a
// YAML recipe unmarshalled into map[string]any, a struct, or any mix of
// maps, structs, slices and pointers.
//
//   - map and struct fields nest: {lora: {r: 8}} gives "lora.r" = "8". A
//     struct field is named by its yaml tag, else its json tag, else its
//     Go name; fields tagged "-" and unexported fields are skipped.
//   - a list of scalars is one value, written as JSON: ["q_proj","v_proj"];
//     a list holding maps or structs nests by index: "datasets.0.path".
//   - nil is "null"; an empty map or struct gives "{}", an empty list "[]".
//   - a time.Duration is written as "1m30s", a value with a MarshalText
//     or String method as that text, a float as the shortest text that
//     reads back to it.
//
// A non-nil value that is not a map, struct, list or pointer gives one
// parameter whose key is "value".
func FlattenParams(v any) map[string]string {
	out := map[string]string{}
	flatten(out, "", reflect.ValueOf(v), 0)
	return out
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func flatten(out map[string]string, prefix string, v reflect.Value, depth int) {
	key := prefix
	if key == "" {
		key = "value"
	}
	if depth > maxFlattenDepth {
		out[key] = "<too deep>"
		return
	}
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			out[key] = "null"
			return
		}
		if s, ok := scalarText(v); ok {
			out[key] = s
			return
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		out[key] = "null"
		return
	}
	if s, ok := scalarText(v); ok {
		out[key] = s
		return
	}
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() || v.Len() == 0 {
			out[key] = "{}"
			return
		}
		type kv struct {
			k string
			v reflect.Value
		}
		entries := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			entries = append(entries, kv{fmt.Sprint(it.Key().Interface()), it.Value()})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		for _, e := range entries {
			flatten(out, join(prefix, e.k), e.v, depth+1)
		}
	case reflect.Struct:
		n := 0
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			name, skip := fieldName(f)
			if skip {
				continue
			}
			fv := v.Field(i)
			if f.Anonymous && name == "" {
				// An embedded struct's fields belong to the outer one.
				for fv.Kind() == reflect.Pointer {
					if fv.IsNil() {
						break
					}
					fv = fv.Elem()
				}
				if fv.Kind() == reflect.Struct {
					flatten(out, prefix, fv, depth+1)
					n++
					continue
				}
				if !f.IsExported() {
					continue
				}
				name = f.Name
			}
			if name == "" {
				name = f.Name
			}
			flatten(out, join(prefix, name), fv, depth+1)
			n++
		}
		if n == 0 {
			out[key] = "{}"
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() || v.Len() == 0 {
			out[key] = "[]"
			return
		}
		if !allScalars(v) {
			for i := range v.Len() {
				flatten(out, join(prefix, strconv.Itoa(i)), v.Index(i), depth+1)
			}
			return
		}
		parts := make([]string, v.Len())
		for i := range v.Len() {
			e := v.Index(i)
			for e.Kind() == reflect.Interface || e.Kind() == reflect.Pointer {
				if e.IsNil() {
					break
				}
				e = e.Elem()
			}
			parts[i] = jsonScalar(e)
		}
		out[key] = "[" + strings.Join(parts, ",") + "]"
	default:
		// Channels, functions and the like: their type says what they are.
		out[key] = v.Type().String()
	}
}

// fieldName returns a struct field's name from its yaml or json tag; skip
// is true for "-". An empty name means the tag gave none.
func fieldName(f reflect.StructField) (name string, skip bool) {
	for _, tagKey := range []string{"yaml", "json"} {
		tag, ok := f.Tag.Lookup(tagKey)
		if !ok {
			continue
		}
		n, opts, _ := strings.Cut(tag, ",")
		if n == "-" && opts == "" {
			return "", true
		}
		if strings.Contains(","+opts+",", ",inline,") {
			return "", false
		}
		return n, false
	}
	return "", false
}

var (
	durationType      = reflect.TypeFor[time.Duration]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	stringerType      = reflect.TypeFor[fmt.Stringer]()
)

// scalarText returns the text of a value that is written as one
// parameter: basic kinds, durations, and values with MarshalText or String.
func scalarText(v reflect.Value) (string, bool) {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String(), true
	}
	if v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface || !v.IsNil() {
		if v.Type().Implements(textMarshalerType) {
			if b, err := v.Interface().(encoding.TextMarshaler).MarshalText(); err == nil {
				return string(b), true
			}
		}
		base := v.Kind()
		if base == reflect.Pointer {
			base = v.Type().Elem().Kind()
		}
		if v.Type().Implements(stringerType) && base != reflect.Struct && base != reflect.Map && base != reflect.Slice && base != reflect.Array {
			return v.Interface().(fmt.Stringer).String(), true
		}
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float32:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32), true
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	case reflect.Complex64, reflect.Complex128:
		return fmt.Sprint(v.Complex()), true
	}
	return "", false
}

func allScalars(v reflect.Value) bool {
	for i := range v.Len() {
		e := v.Index(i)
		for e.Kind() == reflect.Interface || e.Kind() == reflect.Pointer {
			if e.IsNil() {
				break
			}
			e = e.Elem()
		}
		if (e.Kind() == reflect.Interface || e.Kind() == reflect.Pointer) && e.IsNil() {
			continue
		}
		if _, ok := scalarText(e); !ok {
			return false
		}
	}
	return true
}

// jsonScalar writes one list element: strings quoted, numbers and
// booleans bare, nil as null.
func jsonScalar(v reflect.Value) string {
	if !v.IsValid() || (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && v.IsNil() {
		return "null"
	}
	s, _ := scalarText(v)
	switch v.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if v.Type() != durationType {
			return s
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return s
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return string(b)
}

// SplitRecord turns one line of the trainer's metrics.jsonl (a map such
// as {"step": 10, "loss": 1.2, "skipped": false, "grad_norm": nil}) into
// a step and metric values: numbers as they are, booleans as 0 or 1; nil
// (a NaN or Inf written as JSON null) and other kinds are left out. ok is
// false when the record has no numeric "step".
func SplitRecord(rec map[string]any) (step int64, metrics map[string]float64, ok bool) {
	metrics = make(map[string]float64, len(rec))
	for k, v := range rec {
		f, isNum := number(v)
		if k == "step" {
			if isNum && !math.IsNaN(f) && !math.IsInf(f, 0) {
				step, ok = int64(f), true
			}
			continue
		}
		if isNum {
			metrics[k] = f
		}
	}
	return step, metrics, ok
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
