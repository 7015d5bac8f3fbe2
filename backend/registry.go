package backend

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// Opener starts a back end, or says why it cannot run on this machine.
type Opener func() (Backend, error)

type entry struct {
	name     string
	priority int
	open     Opener
}

var registry struct {
	sync.Mutex
	entries []entry
}

// Register makes a back end available under name. Default tries back ends
// from the highest priority down. It is meant to be called from an init
// function, and panics if the name is taken.
func Register(name string, priority int, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	for _, e := range registry.entries {
		if e.name == name {
			panic("backend: Register called twice for " + name)
		}
	}
	registry.entries = append(registry.entries, entry{name, priority, open})
	slices.SortStableFunc(registry.entries, func(a, b entry) int { return cmp.Compare(b.priority, a.priority) })
}

// Names lists the registered back ends, most preferred first.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	var names []string
	for _, e := range registry.entries {
		names = append(names, e.name)
	}
	return names
}

// Open starts the named back end.
func Open(name string) (Backend, error) {
	registry.Lock()
	var found *entry
	for i := range registry.entries {
		if registry.entries[i].name == name {
			found = &registry.entries[i]
		}
	}
	registry.Unlock()
	if found == nil {
		return nil, fmt.Errorf("backend %q is not built in (have %s)", name, strings.Join(Names(), ", "))
	}
	b, err := found.open()
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	return b, nil
}

// EnvBackend is the environment variable that forces a back end by name.
const EnvBackend = "WHET_BACKEND"

// Default starts the back end named by $WHET_BACKEND, or else the most
// preferred registered back end that starts on this machine.
func Default() (Backend, error) {
	if name := os.Getenv(EnvBackend); name != "" {
		b, err := Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvBackend, name, err)
		}
		return b, nil
	}
	var errs []error
	for _, name := range Names() {
		b, err := Open(name)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("backend: none registered (import github.com/whet-ai/whet/backend/cpu)")
	}
	return nil, fmt.Errorf("backend: none starts: %w", errors.Join(errs...))
}
