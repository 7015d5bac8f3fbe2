package data

import (
	"fmt"
	"strings"
	"testing"
)

// LossFunc is a stand-in for a causal language model's per-token loss:
// the loss of predicting target from the tokens the prediction may attend
// to (ids, with their position ids), in order.
type LossFunc func(ids, positions []int32, target int32) float64

// hashLoss is a deterministic stand-in model: its loss depends on every
// token it may attend to, their positions and the target. Its values are
// multiples of 1/256 below 16, so sums of them are exact in float64 and
// the order of summation cannot hide a difference.
func hashLoss(ids, positions []int32, target int32) float64 {
	h := uint64(14695981039346656037)
	step := func(x int32) {
		h ^= uint64(uint32(x))
		h *= 1099511628211
	}
	for i := range ids {
		step(ids[i])
		step(positions[i])
	}
	step(target)
	return float64(splitmix(h)%4096) / 256
}

// batchLoss runs loss over a batch as a model with a document mask does:
// the prediction at t-1 attends to the tokens at j <= t-1 of its own
// segment, and is scored against Labels[t]. It returns the sum of the
// losses and their number; the batch's loss is their ratio.
func batchLoss(t *testing.T, b *Batch, loss LossFunc) (float64, int) {
	t.Helper()
	sum, n := 0.0, 0
	for r := 0; r < b.B; r++ {
		ids, labels, pos, seg := b.Row(r)
		if labels[0] != IgnoreIndex {
			t.Fatalf("row %d: the first token has a label", r)
		}
		for i := 1; i < b.T; i++ {
			if labels[i] == IgnoreIndex {
				continue
			}
			if seg[i] < 0 || seg[i-1] != seg[i] {
				t.Fatalf("row %d token %d: label %d on a token whose predecessor is in segment %d, itself in %d", r, i, labels[i], seg[i-1], seg[i])
			}
			var ctx, ctxPos []int32
			for j := 0; j < i; j++ {
				if seg[j] == seg[i] {
					ctx = append(ctx, ids[j])
					ctxPos = append(ctxPos, pos[j])
				}
			}
			sum += loss(ctx, ctxPos, labels[i])
			n++
		}
	}
	if n != b.TrainedTokens {
		t.Fatalf("%d loss terms, but the batch says %d trained tokens", n, b.TrainedTokens)
	}
	return sum, n
}

// checkRows checks the layout of a batch: segments numbered from 0 in
// each row, positions restarting at 0 with each document, padding only at
// the end of a row.
func checkRows(t *testing.T, b *Batch, pad int32) {
	t.Helper()
	docs := 0
	for r := 0; r < b.B; r++ {
		ids, labels, pos, seg := b.Row(r)
		want := int32(0)
		for i := range seg {
			switch {
			case seg[i] == -1:
				if ids[i] != pad || labels[i] != IgnoreIndex || pos[i] != 0 {
					t.Fatalf("row %d token %d: padding %d label %d position %d", r, i, ids[i], labels[i], pos[i])
				}
				if i+1 < len(seg) && seg[i+1] != -1 {
					t.Fatalf("row %d: a document after padding at %d", r, i)
				}
			case i == 0 || seg[i] != seg[i-1]:
				if seg[i] != want || pos[i] != 0 {
					t.Fatalf("row %d token %d: document %d at position %d, want document %d at 0", r, i, seg[i], pos[i], want)
				}
				want++
				docs++
			default:
				if pos[i] != pos[i-1]+1 {
					t.Fatalf("row %d token %d: position %d after %d", r, i, pos[i], pos[i-1])
				}
			}
		}
	}
	if docs != len(b.Sources) {
		t.Fatalf("%d documents, %d sources", docs, len(b.Sources))
	}
}

// packingData writes a mixed dataset of conversations of varied lengths.
func packingData(t *testing.T) string {
	dir := t.TempDir()
	var recs []any
	for i := range 40 {
		msgs := []map[string]string{{"role": "system", "content": "You are helpful."}}
		for k := 0; k <= i%4; k++ {
			msgs = append(msgs,
				map[string]string{"role": "user", "content": fmt.Sprintf("question %d of %d: %s", k, i, strings.Repeat("why ", i%7))},
				map[string]string{"role": "assistant", "content": fmt.Sprintf("answer %d: %s", k, strings.Repeat("because ", (i+k)%9))})
		}
		recs = append(recs, map[string]any{"messages": msgs})
	}
	return writeFile(t, dir, "chat.jsonl", jsonl(t, recs...))
}

// TestPackedLossEqualsOneByOne checks that the loss of packed batches is
// the token-weighted mean of the loss of their examples run one by one,
// under a stand-in model that sees every earlier token of its segment and
// the position ids.
func TestPackedLossEqualsOneByOne(t *testing.T) {
	m := llama3Model(t)
	path := packingData(t)
	for _, tc := range []struct {
		seqLen, batch int
		on            TrainOn
	}{
		{512, 1, ""}, {512, 3, ""}, {300, 2, TrainOnAll}, {1024, 4, TrainOnLast}, {160, 2, ""},
	} {
		t.Run(fmt.Sprintf("T%d_B%d_%s", tc.seqLen, tc.batch, tc.on), func(t *testing.T) {
			cfg := config(path)
			cfg.SequenceLen, cfg.TrainOn, cfg.Truncation = tc.seqLen, tc.on, TruncateRight
			exs, _ := examples(t, cfg, m)
			refSum, refN := 0.0, 0
			for i := range exs {
				b := padRows(exs[i:i+1], int32(m.Pad))
				s, n := batchLoss(t, b, hashLoss)
				refSum += s
				refN += n
			}
			cfg.Packing, cfg.BatchSize = true, tc.batch
			it, err := openDS(t, cfg, m).Train(nil)
			if err != nil {
				t.Fatal(err)
			}
			sum, n, docs := 0.0, 0, 0
			rows := 0
			for _, b := range drain(t, it) {
				if b.T != tc.seqLen || b.B > tc.batch {
					t.Fatalf("batch of %dx%d, want at most %dx%d", b.B, b.T, tc.batch, tc.seqLen)
				}
				checkRows(t, b, int32(m.Pad))
				s, k := batchLoss(t, b, hashLoss)
				sum += s
				n += k
				docs += len(b.Sources)
				rows += b.B
			}
			if docs != len(exs) {
				t.Fatalf("%d packed documents, %d examples", docs, len(exs))
			}
			if rows >= len(exs) && tc.seqLen >= 512 {
				t.Errorf("%d rows for %d examples: nothing was packed", rows, len(exs))
			}
			if n != refN || sum/float64(n) != refSum/float64(refN) {
				t.Errorf("packed loss %v over %d tokens, one by one %v over %d", sum/float64(n), n, refSum/float64(refN), refN)
			}
		})
	}
}

// TestStandInSeesSegments checks that the stand-in model would notice a
// packing bug: with one segment per row, documents see each other and the
// loss changes.
func TestStandInSeesSegments(t *testing.T) {
	m := llama3Model(t)
	cfg := config(packingData(t))
	cfg.SequenceLen, cfg.Packing, cfg.BatchSize = 1024, true, 2
	it, err := openDS(t, cfg, m).Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := batchLoss(t, b, hashLoss)
	leaky := *b
	leaky.Segments = append([]int32(nil), b.Segments...)
	leaky.PositionIDs = append([]int32(nil), b.PositionIDs...)
	for i, s := range leaky.Segments {
		if s > 0 {
			leaky.Segments[i] = 0
		}
	}
	if bad, _ := batchLoss(t, &leaky, hashLoss); bad == good {
		t.Error("merging the documents of a row did not change the stand-in loss")
	}
	for i := range leaky.PositionIDs {
		leaky.PositionIDs[i] = int32(i % b.T)
	}
	copy(leaky.Segments, b.Segments)
	if bad, _ := batchLoss(t, &leaky, hashLoss); bad == good {
		t.Error("positions that do not restart with each document did not change the stand-in loss")
	}
}

// TestPadding checks unpacked rows: padded to the longest, segments 0/-1
// and the attention mask.
func TestPadding(t *testing.T) {
	m := plainModel(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "t.jsonl", jsonl(t,
		map[string]any{"text": "a"}, map[string]any{"text": "a much longer text than the first"}, map[string]any{"text": "mid length"}))
	cfg := config(path)
	cfg.BatchSize = 3
	it, err := openDS(t, cfg, m).Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	bs := drain(t, it)
	if len(bs) != 1 || bs[0].B != 3 {
		t.Fatalf("%d batches", len(bs))
	}
	b := bs[0]
	checkRows(t, b, int32(m.Pad))
	mask := b.AttentionMask()
	longest := 0
	for r := 0; r < b.B; r++ {
		_, _, _, seg := b.Row(r)
		n := 0
		for i, s := range seg {
			if s == 0 {
				n++
			}
			if (s == 0) != (mask[r*b.T+i] == 1) {
				t.Fatalf("attention mask disagrees with segments at row %d token %d", r, i)
			}
		}
		longest = max(longest, n)
	}
	if b.T != longest {
		t.Errorf("T = %d, want the longest row, %d", b.T, longest)
	}
}

// TestLengthBucketing checks that bucketed batches group similar lengths
// and still hold every example once.
func TestLengthBucketing(t *testing.T) {
	m := llama3Model(t)
	cfg := config(packingData(t))
	cfg.SequenceLen, cfg.Truncation = 1024, TruncateRight
	exs, _ := examples(t, cfg, m)
	cfg.BatchSize, cfg.LengthBucketing, cfg.BucketWindow, cfg.Shuffle, cfg.Seed = 4, true, 5, true, 3
	it, err := openDS(t, cfg, m).Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	padded, plain := 0, 0
	seen := map[Pos]int{}
	for _, b := range drain(t, it) {
		padded += b.B * b.T
		for _, s := range b.Sources {
			seen[s]++
		}
	}
	for i := 0; i < len(exs); i += 4 {
		longest := 0
		for _, ex := range exs[i:min(i+4, len(exs))] {
			longest = max(longest, len(ex.InputIDs))
		}
		plain += longest * len(exs[i:min(i+4, len(exs))])
	}
	if len(seen) != len(exs) {
		t.Errorf("%d distinct examples in buckets, want %d", len(seen), len(exs))
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("%v appears %d times", s, n)
		}
	}
	if padded >= plain {
		t.Errorf("bucketing pads to %d tokens, batching in order to %d", padded, plain)
	}
}
