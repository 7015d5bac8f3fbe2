package data

import (
	"fmt"
	"strings"
)

// Stats counts what the pipeline did with the records it read. An
// iterator's counts cover the batches it has returned (and, with length
// bucketing, the rest of the current window), and they are saved in its
// State so that they carry over a resume.
type Stats struct {
	// Records is the number of records used: read, valid and not held
	// out.
	Records int64 `json:"records"`
	// Examples is the number of documents put in batches.
	Examples int64 `json:"examples"`
	// Tokens and TrainedTokens count the documents' tokens and the trained
	// ones among them.
	Tokens        int64 `json:"tokens"`
	TrainedTokens int64 `json:"trained_tokens"`
	// Skipped is the number of invalid records skipped (skip_invalid).
	Skipped int64 `json:"skipped,omitempty"`
	// Untrained is the number of examples dropped because no token of
	// theirs was trained.
	Untrained int64 `json:"untrained,omitempty"`
	// TooLong is the number of examples dropped for being longer than
	// sequence_len (truncation: drop).
	TooLong int64 `json:"too_long,omitempty"`
	// Truncated is the number of examples cut to sequence_len
	// (truncation: truncate).
	Truncated int64 `json:"truncated,omitempty"`
	// Split is the number of examples cut into several documents
	// (truncation: split).
	Split int64 `json:"split,omitempty"`
	// HeldOut is the number of records left out by the eval split: the
	// eval records for a training iterator, the others for an eval one.
	HeldOut int64 `json:"held_out,omitempty"`
}

func (s *Stats) add(o Stats) {
	s.Records += o.Records
	s.Examples += o.Examples
	s.Tokens += o.Tokens
	s.TrainedTokens += o.TrainedTokens
	s.Skipped += o.Skipped
	s.Untrained += o.Untrained
	s.TooLong += o.TooLong
	s.Truncated += o.Truncated
	s.Split += o.Split
	s.HeldOut += o.HeldOut
}

func (s *Stats) addOutcome(o outcome) {
	s.Untrained += int64(o.untrained)
	s.TooLong += int64(o.tooLong)
	s.Truncated += int64(o.truncated)
	s.Split += int64(o.split)
}

// String summarises the counts on one line, leaving out zero counts of
// problems.
func (s Stats) String() string {
	parts := []string{fmt.Sprintf("%d records, %d examples, %d tokens (%d trained)", s.Records, s.Examples, s.Tokens, s.TrainedTokens)}
	for _, x := range []struct {
		n    int64
		what string
	}{
		{s.Skipped, "invalid records skipped"},
		{s.Untrained, "dropped with no trained token"},
		{s.TooLong, "dropped as longer than sequence_len"},
		{s.Truncated, "truncated to sequence_len"},
		{s.Split, "split into sequence_len pieces"},
		{s.HeldOut, "held out"},
	} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	return strings.Join(parts, "; ")
}
