package nn

import (
	"fmt"
	"reflect"

	"github.com/whet-ai/whet/autograd"
)

// Param is one weight of a model, with its checkpoint name.
type Param struct {
	Name string
	// Var points at the field that holds the weight, so that a loader can
	// set it and an optimiser can replace it.
	Var **autograd.Var
}

var varType = reflect.TypeFor[*autograd.Var]()

// Params lists the weights of a model struct (a pointer to it) in field
// order. Each *autograd.Var field tagged `hf:"name"` is a weight named by the
// tags of the fields that lead to it joined with dots; slices of layers add
// the index ("model.layers.3.mlp.up_proj.weight"). Untagged fields are not
// walked. Nil weights are listed too (a loader fills them); the caller skips
// optional ones that the checkpoint lacks.
func Params(model any) []Param {
	var out []Param
	walk(reflect.ValueOf(model), "", &out)
	return out
}

func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

func walk(v reflect.Value, prefix string, out *[]Param) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type() == varType {
			*out = append(*out, Param{Name: prefix, Var: v.Addr().Interface().(**autograd.Var)})
			return
		}
		if v.IsNil() {
			return
		}
		walk(v.Elem(), prefix, out)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("hf")
			if !ok || !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if f.Type == varType {
				*out = append(*out, Param{Name: join(prefix, tag), Var: fv.Addr().Interface().(**autograd.Var)})
				continue
			}
			walk(fv, join(prefix, tag), out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walk(v.Index(i), join(prefix, fmt.Sprint(i)), out)
		}
	}
}

// NamedLinear is a Linear layer of a model with its checkpoint name (the
// prefix of its weight, e.g. "model.layers.0.self_attn.q_proj").
type NamedLinear struct {
	Name  string
	Layer *Linear
}

var linearType = reflect.TypeFor[Linear]()

// Linears lists the Linear layers of a model struct (a pointer to it), named
// as Params names their weights.
func Linears(model any) []NamedLinear {
	var out []NamedLinear
	walkLinears(reflect.ValueOf(model), "", &out)
	return out
}

func walkLinears(v reflect.Value, prefix string, out *[]NamedLinear) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() && v.Type() != varType {
			walkLinears(v.Elem(), prefix, out)
		}
	case reflect.Struct:
		if v.Type() == linearType && v.CanAddr() {
			*out = append(*out, NamedLinear{Name: prefix, Layer: v.Addr().Interface().(*Linear)})
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, ok := f.Tag.Lookup("hf"); ok && f.IsExported() && f.Type != varType {
				walkLinears(v.Field(i), join(prefix, tag), out)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkLinears(v.Index(i), join(prefix, fmt.Sprint(i)), out)
		}
	}
}
