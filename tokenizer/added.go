package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's "added_tokens": a token that
// is matched in the text before the model sees it.
type AddedToken struct {
	// ID is the token's id (as the Rust library assigns it, which is the
	// id of the file for every well-formed tokenizer.json).
	ID int
	// Content is the token's text.
	Content string
	// Special tokens are matched on the raw text, and skipped by Decode
	// with skipSpecial.
	Special bool
	// SingleWord tokens only match when not inside a word.
	SingleWord bool
	// LStrip and RStrip tokens swallow the whitespace on their left and
	// right.
	LStrip, RStrip bool
	// Normalized tokens are matched on the normalised text (after the
	// normalizer), the others on the raw text.
	Normalized bool
}

// addedVocab is the Rust AddedVocabulary.
type addedVocab struct {
	byContent map[string]int
	byID      map[int]*AddedToken
	special   map[string]bool
	idText    map[int]string // what id_to_token returns
	// order lists the tokens in the order of the matching patterns:
	// special tokens first, then the others, each in file order.
	raw, norm matcher
}

// matcher finds added tokens with Aho-Corasick LeftmostLongest semantics.
type matcher struct {
	nodes   []trieNode
	first   [256]bool
	nonEmpt bool
}

type trieNode struct {
	next map[byte]int32
	id   int32 // token id ending here, -1 if none
}

func (m *matcher) add(pat string, id int) {
	if len(m.nodes) == 0 {
		m.nodes = append(m.nodes, trieNode{id: -1})
	}
	m.nonEmpt = true
	m.first[pat[0]] = true
	cur := int32(0)
	for i := 0; i < len(pat); i++ {
		nx, ok := m.nodes[cur].next[pat[i]]
		if !ok {
			if m.nodes[cur].next == nil {
				m.nodes[cur].next = make(map[byte]int32)
			}
			nx = int32(len(m.nodes))
			m.nodes[cur].next[pat[i]] = nx
			m.nodes = append(m.nodes, trieNode{id: -1})
		}
		cur = nx
	}
	// The first pattern wins among equal ones.
	if m.nodes[cur].id < 0 {
		m.nodes[cur].id = int32(id)
	}
}

// find returns the leftmost-longest match starting at or after pos.
func (m *matcher) find(s string, pos int) (start, end, id int, ok bool) {
	if !m.nonEmpt {
		return 0, 0, 0, false
	}
	for i := pos; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		cur := int32(0)
		best, bestID := -1, -1
		for j := i; j < len(s); j++ {
			nx, ok := m.nodes[cur].next[s[j]]
			if !ok {
				break
			}
			cur = nx
			if m.nodes[cur].id >= 0 {
				best, bestID = j+1, int(m.nodes[cur].id)
			}
		}
		if best >= 0 {
			return i, best, bestID, true
		}
	}
	return 0, 0, 0, false
}

// isRegexWord is the regex crate's Unicode \w: Alphabetic, M, Nd, Pc and
// Join_Control.
func isRegexWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Join_Control, r)
}

// isRegexSpace is the regex crate's Unicode \s (White_Space).
func isRegexSpace(r rune) bool { return isRustWhitespace(r) }

// piece is a part of the input on its way to the model: either text still
// to be tokenized, or an added token already recognised.
type piece struct {
	n     nstring
	token int // added token id, or -1
}

// splitAdded cuts n at the added tokens that m finds, as
// AddedVocabulary::split_with_indices does, appending the pieces to out.
func (v *addedVocab) splitAdded(n nstring, m *matcher, out []piece) []piece {
	s := n.s
	if s == "" {
		return out
	}
	startOffset := 0
	for pos := 0; pos < len(s); {
		st, en, id, ok := m.find(s, pos)
		if !ok {
			break
		}
		pos = en
		tok := v.byID[id]
		if tok.SingleWord {
			startSpace := st == 0
			if !startSpace {
				r, _ := utf8.DecodeLastRuneInString(s[:st])
				startSpace = !isRegexWord(r)
			}
			stopSpace := en == len(s)
			if !stopSpace {
				r, _ := utf8.DecodeRuneInString(s[en:])
				stopSpace = !isRegexWord(r)
			}
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			ns := st
			for ns > 0 {
				r, w := utf8.DecodeLastRuneInString(s[:ns])
				if !isRegexSpace(r) {
					break
				}
				ns -= w
			}
			st = max(ns, startOffset)
		}
		if tok.RStrip {
			for en < len(s) {
				r, w := utf8.DecodeRuneInString(s[en:])
				if !isRegexSpace(r) {
					break
				}
				en += w
			}
		}
		if startOffset < st {
			out = append(out, piece{n.slice(startOffset, st), -1})
		}
		if st < en {
			out = append(out, piece{n.slice(st, en), id})
		}
		startOffset = en
	}
	if startOffset < len(s) {
		out = append(out, piece{n.slice(startOffset, len(s)), -1})
	}
	return out
}
