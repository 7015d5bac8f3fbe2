#!/usr/bin/python3
"""Writes stories260K-golden.json: SentencePiece's own encoding of test
strings with the vocabulary of stories260K.gguf, the reference that
tokenizer.FromGGUF is tested against (gguf_test.go).

The vocabulary comes from stories260K-vocab.json (its 512 pieces, scores and
token types, dumped from the GGUF file by
`go test ./tokenizer -run TestGGUFStoriesVocabDump -gguf.dump`). This script
builds a SentencePiece ModelProto from it as llama.cpp reads such a file:
a BPE model with byte_fallback, and the normalizer spec of Meta's Llama
tokenizer.model (name "identity", add_dummy_prefix true,
remove_extra_whitespaces false, escape_whitespaces true); it loads it with
SentencePieceProcessor and encodes every string.

Run with Debian's SentencePiece (apt-get install python3-sentencepiece
python3-protobuf), from any directory:

    /usr/bin/python3 tokenizer/testdata/gguf/make_golden.py

For each string the output has (a decode_* equal to the string is left out)
  ids             SentencePiece's encoding (no BOS)
  decode          SentencePiece's decoding of ids
  decode_bos      SentencePiece's decoding of [BOS] + ids
  ids_split       only where the string holds the text of a control or
                  unknown piece ("<s>", "</s>", "<unk>"): the string cut at
                  those texts (leftmost, longest first), each piece of text
                  encoded by SentencePiece and each cut-out text replaced by
                  its id. This is what llama.cpp does with parse_special and
                  what Hugging Face does with special added tokens;
                  SentencePiece itself (ids) treats the text as text.
  decode_split    SentencePiece's decoding of ids_split without the control
                  and unknown ids (Hugging Face's skip_special_tokens)
  ids_noprefix    as ids_split (or ids), with add_dummy_prefix false
                  (tokenizer.ggml.add_space_prefix false)
  decode_noprefix its decoding, as decode_split
"""

import json
import os
import random
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "stories260K-vocab.json")
OUT = os.path.join(HERE, "stories260K-golden.json")
ORACLE_STRINGS = os.path.join(HERE, "..", "oracle", "strings.json")

# The README's greedy output of stories260K from BOS (40 tokens).
KNOWN = ("Once upon a time, there was a little girl named Lily. She loved to "
         "play outside in the park. One day, she saw a big, r")

STORIES = [
    KNOWN,
    "Once upon a time, there was a little boy named Tim. Tim had a big red ball.",
    "One day, Lily went to the park with her mom. She saw a big tree and wanted to climb it.",
    "\"Can I play with you?\" asked the little dog. The cat said, \"Yes, let's play!\"",
    "They played all day and had lots of fun. At the end of the day, they were very happy.",
    "Lily was sad. She lost her toy. Her friend Timmy helped her find it under the bed.",
    "The sun was shining and the birds were singing.\nTim and Sue ran to the garden.\n\nThe end.",
    "Once upon a time, in a small house, there lived a kind old woman who loved to bake cookies.",
    "Mom said, “Don’t touch the hot stove!” Tim listened and was safe.",
    "She smiled — and then she laughed… It was the best day ever!",
    "“I want to fly like a bird,” said Ben. ‘Me too,’ said Anna.",
    "Once upon a time there was a cat named Max; he liked milk, fish and naps.",
    "1, 2, 3... Go! The race started at 10:30 and ended at 11:45.",
    "They had $5 and bought 3 apples (red & green) for Mom's pie.",
    " Once upon a time",
    "  Once upon a time",
    "Once upon a time ",
    "Once  upon   a    time",
    "once UPON a TiMe",
    "Lily\tand\tTim",
    "Lily\r\nand Tim",
]

EDGE = [
    "", " ", "  ", "   ", "    ", "        ", "\n", "\n\n", " \n ", "\t", "\r", "\r\n",
    " a", "  a", "   a", "a ", "a  ", "a   ", " a ", "a b", "a  b", "a   b", "a    b",
    "▁", "▁▁", "▁a", "a▁b", " ▁ ", "\u00a0", "a\u00a0b", "\u200a", "™", "€", "â€™",
    "0123456789", "3.14159", "-42", "1,000,000", "100%", "#1", "@home", "a_b", "a/b\\c",
    "!?", "...", "…", "——", "(a) [b] {c} <d>", "<", ">", "<>", "<<>>", "s>", "<s", "</",
    "<0x41>", "<0x0A>", "<unk>", "<s>", "</s>", "<s>hello</s>", "<s> hello </s>", " <s>", "<s> ",
    "a<s>b", "<s><s>", "<<s>>", "<s></s>", "hello<unk>world", "</s> The end.",
    "é", "e\u0301", "ñ", "naïve café", "Åström", "ß", "ǅ", "İstanbul",
    "😀", "😀😃", " 😀 ", "emoji😀inside", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤️",
    "中文", "日本語", "한국어", "Привет", "مرحبا", "שלום", "नमस्ते", "Ελληνικά",
    "\u0000", "nul\u0000byte", "\u0007\u001b", "\ufffd", "\uffff", "\U0010ffff", "\ufeffBOM",
    "\u2028\u2029", "\u3000", "\u200b",
]


def load_vocab():
    with open(VOCAB, encoding="utf-8") as f:
        return json.load(f)


def make_processor(v, dummy_prefix):
    m = pb.ModelProto()
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(v["tokens"])
    ts.byte_fallback = True
    ts.unk_id = v["unknown_token_id"]
    ts.bos_id = v["bos_token_id"]
    ts.eos_id = v["eos_token_id"]
    ts.pad_id = -1
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = dummy_prefix
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    for tok, score, typ in zip(v["tokens"], v["scores"], v["token_type"]):
        p = m.pieces.add()
        p.piece = tok
        p.score = score
        p.type = typ
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return sp


def random_strings(v, n, seed):
    """Random text: words made of vocabulary pieces and single characters,
    with spaces, punctuation, newlines and characters outside the
    vocabulary (byte fallback)."""
    rng = random.Random(seed)
    pieces = [t.replace("▁", " ") for t, typ in zip(v["tokens"], v["token_type"]) if typ == 1]
    extra = list("äöüßçøåéèêëíîïóôúûñ¿¡«»‹›§¶°±×÷") + ["😀", "🙂", "中", "文", "字", "ж", "λ", "\t", "\n", "\r", "\u00a0", "\u200b"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(pieces))
            elif r < 0.75:
                parts.append(" " * rng.choice([1, 1, 1, 2, 3]))
            elif r < 0.9:
                parts.append(rng.choice(extra))
            else:
                parts.append(rng.choice(list(".,!?;:'\"-()")))
        out.append("".join(parts))
    return out


def split_specials(s, specials):
    """Cuts s at the texts of the special pieces, leftmost then longest
    first; returns a list of str (text) and int (piece id)."""
    out = []
    i = start = 0
    while i < len(s):
        best = None
        for text, pid in specials:
            if s.startswith(text, i) and (best is None or len(text) > len(best[0])):
                best = (text, pid)
        if best is None:
            i += 1
            continue
        if i > start:
            out.append(s[start:i])
        out.append(best[1])
        i += len(best[0])
        start = i
    if start < len(s):
        out.append(s[start:])
    return out


def encode_split(sp, parts):
    ids = []
    for p in parts:
        if isinstance(p, int):
            ids.append(p)
        else:
            ids.extend(sp.encode(p))
    return ids


def main():
    v = load_vocab()
    sp = make_processor(v, True)
    sp_noprefix = make_processor(v, False)
    specials = [(t, i) for i, (t, typ) in enumerate(zip(v["tokens"], v["token_type"])) if typ in (2, 3)]
    special_ids = {i for _, i in specials}

    strings = list(STORIES) + list(EDGE)
    if os.path.exists(ORACLE_STRINGS):
        with open(ORACLE_STRINGS, encoding="utf-8") as f:
            strings += json.load(f)
    # Every normal piece on its own, as text.
    strings += [t.replace("▁", " ") for t, typ in zip(v["tokens"], v["token_type"]) if typ == 1]
    strings += random_strings(v, 250, 260)
    seen = set()
    cases = []
    bos = v["bos_token_id"]
    for s in strings:
        if s in seen:
            continue
        seen.add(s)
        ids = sp.encode(s)
        c = {"s": s, "ids": ids}
        parts = split_specials(s, specials)
        if any(isinstance(p, int) for p in parts):
            split = encode_split(sp, parts)
            c["ids_split"] = split
            c["decode_split"] = sp.decode([i for i in split if i not in special_ids])
        nop = encode_split(sp_noprefix, parts)
        c["ids_noprefix"] = nop
        c["decode"] = sp.decode(ids)
        c["decode_bos"] = sp.decode([bos] + ids)
        c["decode_noprefix"] = sp_noprefix.decode([i for i in nop if i not in special_ids])
        # A decoding equal to the string is left out.
        for k in ("decode", "decode_bos", "decode_split", "decode_noprefix"):
            if c.get(k) == s:
                del c[k]
        cases.append(c)
    doc = {
        "generator": "make_golden.py with SentencePiece %s (%s)" % (spm.__version__, "Debian python3-sentencepiece"),
        "vocab": os.path.basename(VOCAB),
        "known_text": KNOWN,
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k in ("generator", "vocab", "known_text"):
            f.write("%s: %s,\n" % (json.dumps(k), json.dumps(doc[k], ensure_ascii=False)))
        f.write('"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print("%s: %d cases (%d with control-token text)" % (OUT, len(cases), sum("ids_split" in c for c in cases)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
