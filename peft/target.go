package peft

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/nn"
)

// outputLayer is the name of the output projection, which "all-linear"
// leaves out (PEFT skips a transformers model's output embeddings).
const outputLayer = "lm_head"

// fullMatch compiles a Python re.fullmatch pattern as an RE2 one. RE2 has
// no look-arounds or back-references; such a pattern is an error naming it.
func fullMatch(field, pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w (Go's RE2 has no look-arounds or back-references)", field, pattern, err)
	}
	return re, nil
}

// matcher decides whether a module name is selected by a Modules value.
type matcher func(name string) bool

func modulesMatcher(field string, m Modules) (matcher, error) {
	if m.IsPattern {
		re, err := fullMatch(field, m.Pattern)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return func(name string) bool {
		for _, n := range m.Names {
			if name == n || strings.HasSuffix(name, "."+n) {
				return true
			}
		}
		return false
	}, nil
}

// layerIndex returns the layer number in a module name as PEFT finds it:
// the last ".<pattern>.<N>." (any pattern when patterns is empty).
func layerIndex(name string, patterns []string) (int, bool) {
	exprs := []string{`^.*\.[^.]*\.(\d+)\.`}
	if len(patterns) > 0 {
		exprs = exprs[:0]
		for _, p := range patterns {
			exprs = append(exprs, `^.*\.`+p+`\.(\d+)\.`)
		}
	}
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			continue
		}
		if m := re.FindStringSubmatch(name); m != nil {
			n, err := strconv.Atoi(m[1])
			return n, err == nil
		}
	}
	return 0, false
}

// SelectTargets returns the linear layers of model that cfg's
// target_modules, exclude_modules, layers_to_transform and layers_pattern
// select, in model order, with PEFT's rules:
//   - a list matches a module named exactly as an entry, or ending with
//     "." + entry; for a suffix match (not an exact one),
//     layers_to_transform then keeps only the listed layer indices;
//   - a string is a regular expression the whole module name must match;
//   - "all-linear" (any case) selects every linear layer but lm_head;
//   - exclude_modules (list or regex) removes modules.
//
// Selecting nothing is an error.
func SelectTargets(model any, cfg *LoraConfig) ([]nn.NamedLinear, error) {
	if cfg.TargetModules.IsZero() {
		return nil, fmt.Errorf("target_modules is not set")
	}
	var include matcher
	allLinear := cfg.TargetModules.IsPattern && strings.EqualFold(cfg.TargetModules.Pattern, AllLinear)
	if allLinear {
		include = func(name string) bool { return name != outputLayer && !strings.HasSuffix(name, "."+outputLayer) }
	} else {
		var err error
		if include, err = modulesMatcher("target_modules", cfg.TargetModules); err != nil {
			return nil, err
		}
	}
	exclude := func(string) bool { return false }
	if !cfg.ExcludeModules.IsZero() {
		var err error
		if exclude, err = modulesMatcher("exclude_modules", cfg.ExcludeModules); err != nil {
			return nil, err
		}
	}
	var out []nn.NamedLinear
	for _, nl := range nn.Linears(model) {
		name := nl.Name
		if exclude(name) || !include(name) {
			continue
		}
		exact := !cfg.TargetModules.IsPattern && slices.Contains(cfg.TargetModules.Names, name)
		if !cfg.TargetModules.IsPattern && !exact && len(cfg.LayersToTransform) > 0 {
			i, ok := layerIndex(name, cfg.LayersPattern)
			if !ok || !slices.Contains(cfg.LayersToTransform, i) {
				continue
			}
		}
		out = append(out, nl)
	}
	if len(out) == 0 {
		t, _ := cfg.TargetModules.MarshalJSON()
		return nil, fmt.Errorf("target_modules %s (layers_to_transform %v) match no linear layer of the model", t, []int(cfg.LayersToTransform))
	}
	return out, nil
}

// minTargetsForSuffixes is the count from which PEFT replaces a long list of
// targeted module names by the shortest suffixes that select the same set.
const minTargetsForSuffixes = 20

// savedTargets is the target_modules PEFT writes for an adapter that was
// attached to names: "all-linear" expands to the module names, replaced by
// the shortest name suffixes that select exactly the same modules once
// there are 20 or more (as PEFT's _find_minimal_target_modules does). Other
// values are kept as given (a list is sorted; PEFT keeps it as a set).
func savedTargets(cfg *LoraConfig, model any, names []string) Modules {
	t := cfg.TargetModules
	if t.IsPattern && !strings.EqualFold(t.Pattern, AllLinear) {
		return t
	}
	if !t.IsPattern {
		s := slices.Clone(t.Names)
		sort.Strings(s)
		return ModuleList(slices.Compact(s)...)
	}
	targeted := slices.Clone(names)
	sort.Strings(targeted)
	if len(targeted) < minTargetsForSuffixes {
		return ModuleList(targeted...)
	}
	var others []string
	for _, nl := range nn.Linears(model) {
		if !slices.Contains(targeted, nl.Name) {
			others = append(others, nl.Name)
		}
	}
	covers := func(suffix, name string) bool { return name == suffix || strings.HasSuffix(name, "."+suffix) }
	var suffixes []string
	for _, name := range targeted {
		if slices.ContainsFunc(suffixes, func(s string) bool { return covers(s, name) }) {
			continue
		}
		parts := strings.Split(name, ".")
		for i := len(parts) - 1; i >= 0; i-- {
			s := strings.Join(parts[i:], ".")
			if !slices.ContainsFunc(others, func(o string) bool { return covers(s, o) }) {
				suffixes = append(suffixes, s)
				break
			}
		}
	}
	sort.Strings(suffixes)
	return ModuleList(suffixes...)
}
