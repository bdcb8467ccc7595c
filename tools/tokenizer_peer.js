#!/usr/bin/env node
// The peer implementation for the tokenizer: @lenml/tokenizers (a JS port of HF
// tokenizers), installed with `npm install --prefix .cache/peer @lenml/tokenizers`.
//   node tools/tokenizer_peer.js encode MODEL_DIR TEXTS.json OUT.json
//       OUT: [{"text","ids","decoded"}] (no BOS, special tokens matched and kept)
//   node tools/tokenizer_peer.js bench MODEL_DIR TEXT_FILE [REPEATS]
//       prints MB/s of encoding TEXT_FILE's lines
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
const { TokenizerLoader } = require(path.join(root, '.cache/peer/node_modules/@lenml/tokenizers'));

function load(dir) {
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  });
}

const [mode, dir, input, out] = process.argv.slice(2);
const tok = load(dir);
if (mode === 'encode') {
  const texts = JSON.parse(fs.readFileSync(input, 'utf8'));
  const res = texts.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: false });
    const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : '';
    return { text, ids, decoded };
  });
  fs.writeFileSync(out, JSON.stringify(res));
} else if (mode === 'bench') {
  const lines = fs.readFileSync(input, 'utf8').split(/(?<=\n)/);
  const bytes = Buffer.byteLength(lines.join(''), 'utf8');
  const repeats = Number(out || 3);
  let best = Infinity, count = 0;
  for (let r = 0; r < repeats; ++r) {
    const t0 = process.hrtime.bigint();
    count = 0;
    for (const l of lines) count += tok.encode(l, { add_special_tokens: false }).length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(JSON.stringify({ bytes, tokens: count, seconds: best, mb_per_s: bytes / 1e6 / best }));
} else {
  console.error('usage: tokenizer_peer.js encode|bench MODEL_DIR ...');
  process.exit(2);
}
