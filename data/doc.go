// Package data turns dataset files into the batches a trainer consumes:
// reading, format detection, chat templating, tokenization, labels,
// truncation, packing, shuffling, epochs, an eval split and resumable
// iteration.
//
//	m, _ := data.NewModel(tok, tmpl, special) // tokenizer, chat template
//	cfg := data.DefaultConfig("train/*.jsonl")
//	cfg.SequenceLen, cfg.Packing, cfg.BatchSize = 4096, true, 8
//	ds, _ := data.Open(cfg, m)
//	it, _ := ds.Train(nil) // or ds.Train(&savedState)
//	for {
//		b, err := it.Next() // io.EOF after the last epoch
//		...
//		state := it.State() // JSON; save it with the checkpoint
//	}
//
// # The pipeline
//
// Files: .jsonl (one JSON object per line), .json (one array of objects,
// streamed element by element with a json.Decoder), .parquet (each row a
// record, columns and groups as fields), .csv and .tsv (a header row names
// the fields; a cell holding a JSON list, such as messages or input_ids,
// is decoded when a list is wanted) and .txt (each line, paragraph or file
// a text record; Config.TextUnit). Config.Files takes paths, glob patterns
// and directories (searched recursively). Files are read record by record:
// a window of records (Config.ShuffleWindow, at most 64 MiB) is the most
// the pipeline holds, whatever the size of a file.
//
// Formats (Config.Format, or detected from the first record's fields, and
// reported by Dataset.Detection): text, completion, alpaca, messages,
// sharegpt and tokens; see the Format constants. Detection looks, in this
// order, for input_ids (tokens: pre-tokenized data wins over the columns
// it was made from), messages or conversations (messages or sharegpt, by
// the keys of their first message: role and content, or from and value),
// instruction and output (alpaca), prompt and completion (completion) and
// text (text); .txt files are text. Config.Fields renames the
// fields each reads; Config.Roles maps further role names. Messages and
// sharegpt conversations are rendered with the model's chat template
// (package tokenizer/chat); completion and alpaca examples are written as
// prompt then completion, alpaca's with Stanford Alpaca's prompt
// (AlpacaPrompt), unless Config.PromptStyle is chat, which makes each a
// user turn and an assistant turn for the chat template.
//
// A record that cannot be used (malformed JSON, a missing field, a field
// of the wrong type, a role that is not known, a token id outside the
// vocabulary) is a *RecordError naming the file, the line (the row of a
// parquet file) and the field. With Config.SkipInvalid it is skipped and
// counted in Stats.Skipped instead. A JSON array that is not well formed
// cannot be read past the error and always fails.
//
// # Labels
//
// Labels are aligned with the input ids as in Hugging Face: a trained
// token's label is its id, any other token's is -100 (IgnoreIndex), and the
// model scores its prediction at position t-1 against the label at t. The
// first token of every document has label -100, since nothing in the
// document predicts it; this is also what keeps a packed row from training
// one document's last token to predict the next document's first.
//
// Config.TrainOn (default assistant; axolotl's train_on_inputs: true is
// all):
//
//   - assistant: the completion of completion and alpaca examples (and
//     the EOS after it), and every assistant turn of a conversation. An
//     assistant turn's tokens are those of the span the chat template
//     writes for it (tokenizer/chat's RenderSpans): its content and the
//     end-of-turn text after it, such as <|eot_id|>, <|im_end|> or </s>,
//     which the model must learn to produce to stop. Headers
//     ("<|start_header_id|>assistant<|end_header_id|>\n\n"), system, user
//     and tool turns are not trained.
//   - last: only the last assistant turn.
//   - all: every token.
//
// Text records train every token; tokens records keep their labels (all
// trained when they have none).
//
// A conversation keeps its tokens only up to the end of its last message:
// a generation prompt that a template prints after the loop (the first
// Llama 3 templates always end with an assistant header) belongs to no turn
// in the data. Unless every token is trained, the tokens after the last
// trained one are dropped too: they cannot change the loss.
//
// # EOS
//
// Text, completion and alpaca examples get Model.EOS appended (trained)
// unless their tokens already end with it. A conversation gets it only
// when its last turn is not closed: when its last token that is not white
// space is neither EOS, nor a special token of the tokenizer, nor one of
// Model.Stop. Templates that end turns with <|eot_id|>, <|im_end|>\n or
// </s> therefore get no extra EOS; one that writes nothing after the last
// assistant turn gets one. Tokens records are taken as they are.
//
// # Truncation
//
// An example longer than Config.SequenceLen is, by Config.Truncation:
//
//   - drop (the default for every format but text, as axolotl does):
//     dropped and counted in Stats.TooLong;
//   - truncate: cut to its first SequenceLen tokens (from the right; the
//     end of the last turn, and its EOS, may be lost) and counted in
//     Stats.Truncated;
//   - split (the default for text): cut into pieces of SequenceLen
//     tokens, each a document of its own (whose first token, like every
//     document's, is not trained), counted in Stats.Split.
//
// After truncation, an example with no trained token left is dropped and
// counted in Stats.Untrained.
//
// # Batches
//
// Without packing, each example is a row, padded with Model.Pad to the
// longest row of its batch (label -100, position 0, segment -1); its
// segment is 0, so Segments doubles as the attention mask (0 real, -1
// padding; Batch.AttentionMask gives 1/0). Config.LengthBucketing sorts a
// window of Config.BucketWindow batches' worth of examples by length before
// cutting it into batches, and shuffles the batches' order.
//
// With packing, examples are put in rows of exactly SequenceLen tokens in
// order, each into the current row when it fits and else into a new one
// (next fit; the rest of a row is padding). Within a row, documents are
// numbered from 0 in Segments, positions restart at 0 for each document,
// and a token attends only to earlier tokens of its own segment, so the
// loss of a packed batch is the token-weighted mean of the loss of its
// documents run one by one.
//
// A batch never spans two epochs; the last batch of an epoch may have
// fewer rows.
//
// # Order and resuming
//
// With Config.Shuffle, each epoch reads the files in an order drawn from
// Config.Seed and the epoch, and each window of Config.ShuffleWindow
// records of a file in an order drawn from the seed, the epoch, the file's
// name and the window's place. Tokenization runs on runtime.NumCPU()
// goroutines (Config.Workers) and never changes the order. The randomness
// is the package's own (SplitMix64), so a seed means the same order with
// every Go release.
//
// Iterator.State is a small JSON-serialisable State: the place in the
// stream where the next batch starts (epoch, file, window, record, piece
// of a split record) and the counts so far. Dataset.Train(&state) reopens
// the file at that place (a byte offset, or a row of a parquet file) and
// returns exactly the batches the saved iterator would have returned.
//
// Config.EvalFraction holds out records for evaluation by a hash of the
// seed, the file's name and the record's index in its file, so the split
// is the same in every epoch and run; Config.EvalFiles names separate
// evaluation files instead. Dataset.Eval iterates over them once, in order.
package data
