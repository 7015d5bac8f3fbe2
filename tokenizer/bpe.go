package tokenizer

import (
	"fmt"
	"sort"
	"sync"
	"unicode/utf8"
)

// BPEConfig describes a byte-pair-encoding model: the fields of the
// "model" object of a tokenizer.json whose type is "BPE".
type BPEConfig struct {
	// Vocab maps every token to its id.
	Vocab map[string]int
	// Merges are the merge rules, highest priority first; both tokens of
	// a pair and their concatenation (less ContinuingSubwordPrefix on the
	// right) must be in Vocab.
	Merges [][2]string
	// UnkToken, when not empty, stands for characters that are not in the
	// vocabulary (and, with ByteFallback, whose bytes are not either).
	UnkToken string
	// ContinuingSubwordPrefix is put before every character but the first
	// of a word, EndOfWordSuffix after the last one.
	ContinuingSubwordPrefix string
	EndOfWordSuffix         string
	// FuseUnk turns a run of unknown characters into one UnkToken.
	FuseUnk bool
	// ByteFallback encodes an unknown character as its UTF-8 bytes, with
	// the tokens "<0x00>" to "<0xFF>" (SentencePiece's byte_fallback).
	ByteFallback bool
	// IgnoreMerges encodes a word that is in the vocabulary as that one
	// token, whatever the merges would make of it (Llama 3).
	IgnoreMerges bool
}

// BPE is a byte-pair-encoding model with a cache of word -> ids, safe for
// concurrent use. It is built by NewBPE or Load.
type BPE struct {
	vocab        map[string]int32
	vocabR       map[int32]string
	merges       map[uint64]mergeVal
	unkToken     string
	unkID        int32
	prefix       string
	suffix       string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int32
	cache        wordCache
}

type mergeVal struct{ rank, newID int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// NewBPE builds a BPE model, checking that the merges and the unknown
// token are consistent with the vocabulary.
func NewBPE(cfg BPEConfig) (*BPE, error) {
	m := &BPE{
		vocab:        make(map[string]int32, len(cfg.Vocab)),
		vocabR:       make(map[int32]string, len(cfg.Vocab)),
		merges:       make(map[uint64]mergeVal, len(cfg.Merges)),
		unkToken:     cfg.UnkToken,
		unkID:        -1,
		prefix:       cfg.ContinuingSubwordPrefix,
		suffix:       cfg.EndOfWordSuffix,
		fuseUnk:      cfg.FuseUnk,
		byteFallback: cfg.ByteFallback,
		ignoreMerges: cfg.IgnoreMerges,
	}
	for tok, id := range cfg.Vocab {
		if id < 0 || id > 1<<31-2 {
			return nil, fmt.Errorf("vocab: token %q has id %d, outside [0, 2^31-1)", tok, id)
		}
		if other, dup := m.vocabR[int32(id)]; dup {
			a, b := other, tok
			if b < a {
				a, b = b, a
			}
			return nil, fmt.Errorf("vocab: id %d is used by both %q and %q", id, a, b)
		}
		m.vocab[tok] = int32(id)
		m.vocabR[int32(id)] = tok
	}
	for i, mg := range cfg.Merges {
		a, ok := m.vocab[mg[0]]
		if !ok {
			return nil, fmt.Errorf("merges[%d] (%q %q): %q is not in the vocab", i, mg[0], mg[1], mg[0])
		}
		b, ok := m.vocab[mg[1]]
		if !ok {
			return nil, fmt.Errorf("merges[%d] (%q %q): %q is not in the vocab", i, mg[0], mg[1], mg[1])
		}
		right := mg[1]
		if len(m.prefix) > 0 {
			if len(right) < len(m.prefix) {
				return nil, fmt.Errorf("merges[%d] (%q %q): %q is shorter than continuing_subword_prefix %q", i, mg[0], mg[1], right, m.prefix)
			}
			right = right[len(m.prefix):]
		}
		merged := mg[0] + right
		n, ok := m.vocab[merged]
		if !ok {
			return nil, fmt.Errorf("merges[%d] (%q %q): the merged token %q is not in the vocab", i, mg[0], mg[1], merged)
		}
		// A repeated pair takes the rank of its last occurrence, as the
		// Rust library's HashMap collect does.
		m.merges[pairKey(a, b)] = mergeVal{int32(i), n}
	}
	if m.unkToken != "" {
		id, ok := m.vocab[m.unkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocab", m.unkToken)
		}
		m.unkID = id
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	m.cache.init()
	return m, nil
}

// VocabSize returns the number of tokens in the model's vocabulary.
func (m *BPE) VocabSize() int { return len(m.vocab) }

// TokenToID returns the id of a vocabulary token.
func (m *BPE) TokenToID(tok string) (int, bool) {
	id, ok := m.vocab[tok]
	return int(id), ok
}

// IDToToken returns the vocabulary token of an id.
func (m *BPE) IDToToken(id int) (string, bool) {
	if id < 0 || id > 1<<31-1 {
		return "", false
	}
	t, ok := m.vocabR[int32(id)]
	return t, ok
}

// word is the result of merging one piece: the token ids and the byte
// length of the piece that each token covers.
type word struct {
	ids  []int32
	lens []int32
}

type symbol struct {
	c          int32
	prev, next int32
	len        int32
}

// tokenize encodes one pre-tokenized piece, appending to w.
func (m *BPE) tokenize(piece string) word {
	if piece == "" {
		return word{}
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[piece]; ok {
			return word{ids: []int32{id}, lens: []int32{int32(len(piece))}}
		}
	}
	cacheable := len(piece) < 256
	if cacheable {
		if w, ok := m.cache.get(piece); ok {
			return w
		}
	}
	w := m.mergeWord(piece)
	if cacheable {
		m.cache.set(piece, w)
	}
	return w
}

// mergeWord is BPE::merge_word followed by Word::merge_all.
func (m *BPE) mergeWord(s string) word {
	syms := make([]symbol, 0, len(s))
	add := func(c int32, n int) {
		prev := int32(len(syms)) - 1
		if prev >= 0 {
			syms[prev].next = int32(len(syms))
		}
		syms = append(syms, symbol{c: c, prev: prev, next: -1, len: int32(n)})
	}
	hasUnk := false
	var unkLen int
	for i := 0; i < len(s); {
		_, sz := utf8.DecodeRuneInString(s[i:])
		end := i + sz
		tok := s[i:end]
		if i > 0 && m.prefix != "" {
			tok = m.prefix + tok
		}
		if end == len(s) && m.suffix != "" {
			tok += m.suffix
		}
		i = end
		if id, ok := m.vocab[tok]; ok {
			if hasUnk {
				add(m.unkID, unkLen)
				hasUnk = false
			}
			add(id, sz)
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(tok); k++ {
				if m.byteIDs[tok[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				for k := 0; k < len(tok); k++ {
					add(m.byteIDs[tok[k]], 1)
				}
				continue
			}
		}
		if m.unkID >= 0 {
			switch {
			case hasUnk && m.fuseUnk:
				unkLen += sz
			case hasUnk:
				add(m.unkID, unkLen)
				unkLen = sz
			default:
				hasUnk = true
				unkLen = sz
			}
		}
	}
	if hasUnk {
		add(m.unkID, unkLen)
	}
	m.mergeAll(syms)
	w := word{ids: make([]int32, 0, len(syms)), lens: make([]int32, 0, len(syms))}
	for _, sy := range syms {
		if sy.len != 0 {
			w.ids = append(w.ids, sy.c)
			w.lens = append(w.lens, sy.len)
		}
	}
	return w
}

// mergeItem is a candidate merge; the queue is a min-heap on (rank, pos).
type mergeItem struct {
	pos, rank, newID int32
}

func (a mergeItem) less(b mergeItem) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

type mergeHeap []mergeItem

func (h *mergeHeap) push(x mergeItem) {
	*h = append(*h, x)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q[i].less(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && q[r].less(q[l]) {
			c = r
		}
		if !q[c].less(q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	*h = q
	return top
}

// mergeAll applies the merges in priority order, exactly as
// Word::merge_all does without dropout.
func (m *BPE) mergeAll(syms []symbol) {
	if len(syms) < 2 {
		return
	}
	var buf [64]mergeItem
	q := mergeHeap(buf[:0])
	for i := 0; i+1 < len(syms); i++ {
		if mv, ok := m.merges[pairKey(syms[i].c, syms[i+1].c)]; ok {
			q.push(mergeItem{int32(i), mv.rank, mv.newID})
		}
	}
	for len(q) > 0 {
		top := q.pop()
		cur := &syms[top.pos]
		if cur.len == 0 || cur.next == -1 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if mv, ok := m.merges[pairKey(cur.c, right.c)]; !ok || mv.newID != top.newID {
			continue
		}
		cur.c = top.newID
		cur.len += right.len
		cur.next = right.next
		syms[nextPos].len = 0
		if right.next > -1 && int(right.next) < len(syms) {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mv, ok := m.merges[pairKey(syms[cur.prev].c, cur.c)]; ok {
				q.push(mergeItem{cur.prev, mv.rank, mv.newID})
			}
		}
		if cur.next >= 0 && int(cur.next) < len(syms) {
			if mv, ok := m.merges[pairKey(cur.c, syms[cur.next].c)]; ok {
				q.push(mergeItem{top.pos, mv.rank, mv.newID})
			}
		}
	}
}

// wordCache is a bounded, sharded map from piece to word; like the Rust
// library's cache it stops taking entries when full.
type wordCache struct {
	shards [16]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]word
}

const cacheShardCapacity = 8192

func (c *wordCache) init() {
	for i := range c.shards {
		c.shards[i].m = make(map[string]word)
	}
}

func shardOf(s string) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return int(h & 15)
}

func (c *wordCache) get(s string) (word, bool) {
	sh := &c.shards[shardOf(s)]
	sh.mu.RLock()
	w, ok := sh.m[s]
	sh.mu.RUnlock()
	return w, ok
}

func (c *wordCache) set(s string, w word) {
	sh := &c.shards[shardOf(s)]
	sh.mu.Lock()
	if len(sh.m) < cacheShardCapacity {
		sh.m[s] = w
	}
	sh.mu.Unlock()
}

// SentencePieceMerges derives BPE merges from a SentencePiece vocabulary
// (pieces[i] is the piece of id i) and its scores, as the transformers
// library's SentencePieceExtractor does when it converts a SentencePiece
// BPE model (Llama, Mistral) to tokenizer.json: every split of a piece into
// two pieces of the vocabulary is a merge, ordered by the score of the
// merged piece, highest first (ties: by id of the merged piece, then by the
// ids of the two halves).
func SentencePieceMerges(pieces []string, scores []float32) ([][2]string, error) {
	if len(scores) != len(pieces) {
		return nil, fmt.Errorf("SentencePieceMerges: %d pieces but %d scores", len(pieces), len(scores))
	}
	ids := make(map[string]int, len(pieces))
	for i, p := range pieces {
		if _, dup := ids[p]; !dup {
			ids[p] = i
		}
	}
	type cand struct {
		l, r  string
		score float32
	}
	var all []cand
	for i, p := range pieces {
		// A repeated piece counts once, at its first id.
		if ids[p] != i {
			continue
		}
		score := scores[i]
		var local []cand
		for k := range p {
			if k == 0 {
				continue
			}
			l, r := p[:k], p[k:]
			if _, ok := ids[l]; !ok {
				continue
			}
			if _, ok := ids[r]; !ok {
				continue
			}
			local = append(local, cand{l, r, score})
		}
		sort.SliceStable(local, func(i, j int) bool {
			if ids[local[i].l] != ids[local[j].l] {
				return ids[local[i].l] < ids[local[j].l]
			}
			return ids[local[i].r] < ids[local[j].r]
		})
		all = append(all, local...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].score > all[j].score })
	out := make([][2]string, len(all))
	for i, c := range all {
		out[i] = [2]string{c.l, c.r}
	}
	return out, nil
}
