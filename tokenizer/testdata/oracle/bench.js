// bench.js: times the Hugging Face tokenizers Node binding (the Rust
// library) encoding a text file, for BenchmarkEncode to report beside the
// Go numbers.
//
//   node bench.js TOKENIZER.json TEXT_FILE CHUNK_BYTES
//
// The text is cut into chunks of about CHUNK_BYTES (at line ends) that are
// encoded one after the other (one encode in flight: one core), twice; the
// second pass is timed. Prints {"mb_per_s": ..., "tokens": ...}.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokPath, textPath, chunkArg] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokPath);
  const text = fs.readFileSync(textPath, 'utf8');
  const size = parseInt(chunkArg, 10);
  const chunks = [];
  const lines = text.split(/(?<=\n)/);
  let cur = '';
  for (const l of lines) {
    cur += l;
    if (Buffer.byteLength(cur) >= size) {
      chunks.push(cur);
      cur = '';
    }
  }
  if (cur) chunks.push(cur);
  let tokens = 0;
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    tokens = 0;
    const t0 = process.hrtime.bigint();
    for (const c of chunks) {
      const e = await tok.encode(c, null, { addSpecialTokens: false });
      tokens += e.getLength();
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (pass > 0) best = Math.min(best, dt);
  }
  const mb = Buffer.byteLength(text) / 1e6;
  console.log(JSON.stringify({ mb_per_s: mb / best, tokens }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
