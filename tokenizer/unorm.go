package tokenizer

import (
	"sort"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// alignedNormalize computes a Unicode normalisation form of s as the
// unicode-normalization-alignments crate of the Rust library does, with the
// change of every output character (see nstring.transform): full
// decomposition (the first character of a decomposition replaces the input
// character, the others are inserted), canonical reordering (the changes
// move with their characters) and, for NFC and NFKC, canonical composition
// (a composed character carries both changes, less one).
func alignedNormalize(form norm.Form, s string) []change {
	compat := form == norm.NFKC || form == norm.NFKD
	decomp := norm.NFD
	if compat {
		decomp = norm.NFKD
	}
	buf := make([]change, 0, len(s))
	for _, r := range s {
		if r >= hangulSBase && r < hangulSBase+hangulSCount {
			si := r - hangulSBase
			buf = append(buf, change{hangulLBase + si/hangulNCount, 0}, change{hangulVBase + si%hangulNCount/hangulTCount, 1})
			if t := si % hangulTCount; t != 0 {
				buf = append(buf, change{hangulTBase + t, 1})
			}
		} else if d := decomp.PropertiesString(string(r)).Decomposition(); d != nil {
			for first := true; len(d) > 0; first = false {
				rr, w := utf8.DecodeRune(d)
				d = d[w:]
				c := 1
				if first {
					c = 0
				}
				buf = append(buf, change{rr, c})
			}
		} else {
			buf = append(buf, change{r, 0})
		}
	}
	// Canonical ordering: stable sort of every run of non-starters.
	for i := 0; i < len(buf); {
		if ccc(buf[i].r) == 0 {
			i++
			continue
		}
		j := i
		for j < len(buf) && ccc(buf[j].r) != 0 {
			j++
		}
		run := buf[i:j]
		sort.SliceStable(run, func(a, b int) bool { return ccc(run[a].r) < ccc(run[b].r) })
		i = j
	}
	if form == norm.NFD || form == norm.NFKD {
		return buf
	}
	out := make([]change, 0, len(buf))
	var composee change
	has := false
	lastCCC := -1
	var pending []change
	for _, ch := range buf {
		cc := int(ccc(ch.r))
		if !has {
			if cc != 0 {
				out = append(out, ch)
				continue
			}
			composee, has = ch, true
			continue
		}
		if lastCCC < 0 {
			if r, ok := compose(composee.r, ch.r); ok {
				composee = change{r, composee.c + ch.c - 1}
				continue
			}
			if cc == 0 {
				out = append(out, composee)
				composee = ch
				continue
			}
			pending = append(pending, ch)
			lastCCC = cc
			continue
		}
		if lastCCC >= cc {
			if cc == 0 {
				out = append(out, composee)
				out = append(out, pending...)
				pending = pending[:0]
				composee = ch
				lastCCC = -1
				continue
			}
			pending = append(pending, ch)
			lastCCC = cc
			continue
		}
		if r, ok := compose(composee.r, ch.r); ok {
			composee = change{r, composee.c + ch.c - 1}
			continue
		}
		pending = append(pending, ch)
		lastCCC = cc
	}
	if has {
		out = append(out, composee)
	}
	return append(out, pending...)
}

const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulTCount = 28
	hangulNCount = 21 * 28
	hangulSCount = 19 * 21 * 28
)

func ccc(r rune) uint8 {
	if r < 0x300 {
		return 0
	}
	return norm.NFD.PropertiesString(string(r)).CCC()
}

var composeCache sync.Map // [2]rune -> rune (or -1)

// compose returns the primary composite of a and b, if any.
func compose(a, b rune) (rune, bool) {
	k := [2]rune{a, b}
	if v, ok := composeCache.Load(k); ok {
		r := v.(rune)
		return r, r >= 0
	}
	s := norm.NFC.String(string(a) + string(b))
	r := rune(-1)
	if c, w := utf8.DecodeRuneInString(s); w == len(s) && c != utf8.RuneError {
		r = c
	}
	composeCache.Store(k, r)
	return r, r >= 0
}
