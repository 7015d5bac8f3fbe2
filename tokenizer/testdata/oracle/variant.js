// variant.js: builds a tokenizer.json variant from testdata/variants.json,
// the same way the Go tests do (buildVariant in golden_test.go).
'use strict';
const fs = require('fs');
const path = require('path');

function buildVariant(testdata, spec) {
  const t = JSON.parse(fs.readFileSync(path.join(testdata, spec.base), 'utf8'));
  for (const [k, v] of Object.entries(spec.set)) {
    const parts = k.split('.');
    let o = t;
    for (const p of parts.slice(0, -1)) o = o[p];
    o[parts[parts.length - 1]] = v;
  }
  if (spec.merges_as_pairs) {
    t.model.merges = t.model.merges.map((m) => (typeof m === 'string' ? m.split(' ') : m));
  }
  return t;
}
module.exports = { buildVariant };
