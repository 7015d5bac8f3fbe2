// golden.js: encodes test strings with the Hugging Face tokenizers Node
// binding (the Rust library) and writes the golden files that the Go tests
// compare with.
//
//   node golden.js CACHE_DIR TESTDATA_DIR OUT_DIR [STRINGS.json]
//
// It covers every tokenizer of tokenizers.json (the real ones from
// CACHE_DIR, installed by fetch.sh; the small ones from TESTDATA_DIR) and
// every variant of TESTDATA_DIR/variants.json, writing OUT_DIR/NAME.json.gz.
// NODE_PATH must reach CACHE_DIR/node_modules. For every string a golden
// file holds the ids without and with special tokens, the character offsets
// of the tokens (without special tokens), and the decoding of the ids with
// special tokens, keeping and skipping them.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');
const { buildVariant } = require('./variant.js');

async function golden(tok, json, strings) {
  const cases = [];
  for (const s of strings) {
    const plain = await tok.encode(s, null, { addSpecialTokens: false });
    const special = await tok.encode(s, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    const idsSpecial = special.getIds();
    const c = { s, ids };
    if (JSON.stringify(ids) !== JSON.stringify(idsSpecial)) c.ids_special = idsSpecial;
    c.offsets = plain.getOffsets();
    c.decode = await tok.decode(idsSpecial, false);
    const skip = await tok.decode(idsSpecial, true);
    if (skip !== c.decode) c.decode_skip = skip;
    cases.push(c);
  }
  const added = {};
  for (const a of json.added_tokens || []) added[a.content] = tok.tokenToId(a.content);
  const version = require('tokenizers/package.json').version;
  return { binding: `tokenizers@${version}`, added_ids: added, cases };
}

async function main() {
  const [cache, testdata, outDir, stringsArg] = process.argv.slice(2);
  if (!outDir) {
    console.error('usage: node golden.js CACHE_DIR TESTDATA_DIR OUT_DIR [STRINGS.json]');
    process.exit(2);
  }
  const strings = JSON.parse(fs.readFileSync(stringsArg || path.join(__dirname, 'strings.json'), 'utf8'));
  fs.mkdirSync(outDir, { recursive: true });
  const jobs = [];
  for (const t of JSON.parse(fs.readFileSync(path.join(__dirname, 'tokenizers.json'), 'utf8'))) {
    const p = t.local ? path.join(testdata, t.local) : path.join(cache, t.cache);
    jobs.push({ name: t.name, text: () => fs.readFileSync(p, 'utf8') });
  }
  for (const v of JSON.parse(fs.readFileSync(path.join(testdata, 'variants.json'), 'utf8'))) {
    jobs.push({ name: v.name, text: () => JSON.stringify(buildVariant(testdata, v)) });
  }
  for (const j of jobs) {
    const text = j.text();
    let tok;
    try {
      tok = Tokenizer.fromString(text);
    } catch (e) {
      throw new Error(`${j.name}: ${e}`);
    }
    const g = await golden(tok, JSON.parse(text), strings);
    const body = JSON.stringify(g).replace(/\},\{"s"/g, '},\n{"s"');
    fs.writeFileSync(path.join(outDir, j.name + '.json.gz'), zlib.gzipSync(body + '\n', { level: 9 }));
  }
  console.log(`${jobs.length} golden files, ${strings.length} strings each, written to ${outDir}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
