package optim

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate at each step, as transformers'
// get_scheduler does: a linear warmup from 0 over Warmup steps, then the
// named decay to the end of Total steps.
type Schedule struct {
	// Kind is "constant", "linear" or "cosine".
	Kind string
	// LR is the peak learning rate.
	LR float64
	// Warmup is the number of warmup steps.
	Warmup int
	// Total is the number of training steps (linear and cosine decay to
	// their end).
	Total int
	// MinLR is the floor of the cosine schedule (transformers'
	// cosine_with_min_lr); 0 decays to 0.
	MinLR float64
}

// Validate checks the schedule's settings.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "constant", "linear", "cosine":
	default:
		return fmt.Errorf("lr schedule %q: want constant, linear or cosine", s.Kind)
	}
	switch {
	case s.LR <= 0 || math.IsNaN(s.LR) || math.IsInf(s.LR, 0):
		return fmt.Errorf("learning rate %g: want a positive number", s.LR)
	case s.Warmup < 0:
		return fmt.Errorf("warmup steps %d: want 0 or more", s.Warmup)
	case s.Kind != "constant" && s.Total <= 0:
		return fmt.Errorf("lr schedule %s needs the total number of steps", s.Kind)
	case s.MinLR < 0 || s.MinLR > s.LR:
		return fmt.Errorf("min lr %g: want between 0 and the learning rate %g", s.MinLR, s.LR)
	}
	return nil
}

// At returns the learning rate for step (counted from 0: the rate the
// first update uses is At(0)).
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.LR * float64(step) / float64(max(1, s.Warmup))
	}
	switch s.Kind {
	case "linear":
		return s.LR * max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
	case "cosine":
		progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		f := max(0, 0.5*(1+math.Cos(math.Pi*progress)))
		return s.MinLR + (s.LR-s.MinLR)*f
	}
	return s.LR
}
