// Writes strings.json: the test strings that golden.js encodes with every
// tokenizer. Run with node; the output is committed.
'use strict';
const fs = require('fs');
const path = require('path');

const base = [
  '', ' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', ' \n ', '\t\t\n  \n', 'a', 'A', '1', '.', '!',
  'Hello world', 'Hello, world!', ' Hello world', 'Hello world ', '  Hello   world  ',
  'hello\nworld', 'hello\n\nworld', 'hello \n world', 'hello\r\nworld', 'hello\t world', 'a\u00a0b',
  "I'm here", "I'M HERE", "it's", "IT'S", "It'S", "we'll", "WE'LL", "they're", "THEY'RE", "you've",
  "YOU'VE", "I'd", "I'D", "don't", "DON'T", "it'ſ", "'s", "'S", "''s", "'", "'ll've", "rock'n'roll",
  'The quick brown fox jumps over the lazy dog.',
  'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG',
  '1', '12', '123', '1234', '12345', '123456', '1234567890', '3.14159', '1,000,000', '-42', '+7', '0x1F',
  '2024-01-01', 'v1.2.3', '٣٤٥', '१२३', '²³', 'Ⅻ', '½', '①②③', '１２３',
  'naïve café résumé', 'nai\u0308ve cafe\u0301', 'Åström', 'A\u030Astro\u0308m', 'ﬁﬂ ligatures', 'Ｆｕｌｌｗｉｄｔｈ',
  'İstanbul', 'ΣΊΣΥΦΟΣ', 'Straße', 'ß', 'ǅ', '𝔾𝕠𝕠𝕕 𝕞𝕠𝕣𝕟𝕚𝕟𝕘',
  '你好，世界！', '我爱自然语言处理。', '日本語のテキストです。', 'カタカナとひらがな', '한국어 텍스트입니다',
  'مرحبا بالعالم', 'שלום עולם', 'Привет, мир!', 'Γειά σου Κόσμε', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'ქართული', 'Ελληνικά',
  '😀', '😀😃😄', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷🇩🇪', '❤️', '✨ sparkle ✨', 'emoji😀inside', ' 😀 ', '🤖🤖🤖 robots',
  'e\u0301', 'a\u0300\u0301\u0302\u0303', '\u0301', 'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333',
  '\u200b', 'zero\u200bwidth', '\ufeffBOM', '\u2028\u2029', '\u3000full width space', 'a\u2003b', '\u00ad', '\u0085',
  '\u0000', 'nul\u0000byte', '\u0007\u0008\u001b', '\ufffd', '\uffff', '\u{10ffff}', '\u{1f600}\u{e0001}',
  'def foo(x):\n    return x * 2\n', 'if (a && b) { return c; }', 'for i in range(10):\n\tprint(i)',
  'x = [1, 2, 3]; y = {"a": 1}', '#include <stdio.h>\nint main() { return 0; }', '    indented\n        more',
  'SELECT * FROM users WHERE id = 42;', '<html><body>hi</body></html>', 'https://example.com/path?q=1&r=2',
  'user@example.com', '$100.00 and 50%', 'C:\\Users\\name', '/usr/bin/env', 'a_b_c__d', 'camelCaseWord',
  'snake_case_word', 'ALLCAPS', 'MiXeD cAsE', '...', '?!?!', '---', '***bold***', '`code`', '~~~',
  '<s>', '</s>', '<unk>', '<s>hello</s>', '<s> hello </s>', ' <s>', '<s> ', 'a<s>b', '<s><s>', '<<s>>',
  '<|begin_of_text|>', '<|end_of_text|>', '<|begin_of_text|>Hello', 'Hello<|end_of_text|>', ' <|begin_of_text|> ',
  '<|eot_id|>', '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>', '<|reserved_special_token_5|>',
  '<|endoftext|>', 'text<|endoftext|>more', '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>',
  '<|im_start|>', '<think>\nreasoning\n</think>', '<tool_call>', '<bos>', '<eos>', '<pad>', '<start_of_turn>user\nhi<end_of_turn>',
  '<｜begin▁of▁sentence｜>', '<｜User｜>hi<｜Assistant｜>', '<|begin_of_tex', '<|begin_of_text', 's>', '<s',
  '▁', '▁▁', 'hello▁world', ' ▁ ', 'Ġ', 'Ċ', 'ĠĠ', '<0x41>', '<0x0A>', 'Ã©', 'âĢĶ',
  'a  b', 'a   b', 'a    b', 'a \t b', 'a\t\tb', 'a\n \nb', 'a \n\n b', 'a\r\rb', 'a\r \nb', ' \n', '\n ', ' \t', '\t ',
  '      ', '\n\n\n\n', '\t\t\t', ' x', '  x', '   x', 'x ', 'x  ', 'x   ', ' \u00a0 x',
  'word.', 'word,word', 'word!?', '(parenthesized)', '"quoted"', "'single'", '«guillemets»', '„Anführung“', '¿Qué?', '¡Hola!',
  '1+1=2', '2^10', 'e=mc²', 'α+β=γ', '∑∫∂√∞', '→←↑↓', '♠♥♦♣', '©®™', '€£¥₹', '°C',
  'Ünïcödé', 'ÀÉÎÕÜ', 'ąčęėįšųūž', 'Čeština', 'Türkçe ığüşöç', 'Tiếng Việt có dấu', 'Ἀθῆναι',
  '\u00e9\u0301', 'ｶﾀｶﾅ', '㍿', 'ℌ', 'ﬃ', 'Å', 'K', 'ª', 'µ',
];

// Longer mixed texts.
const long = [
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.',
  'In 1969, Neil Armstrong said: "That\'s one small step for [a] man, one giant leap for mankind." It was 20:17 UTC on July 20th.',
  '机器学习是人工智能的一个分支。It combines 統計 and コンピュータ科学 with اللغة العربية too! 123456789 😀👍',
  'function add(a, b) {\n  // adds two numbers\n  return a + b;\n}\n\nconsole.log(add(2, 3)); // 5\n',
  '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  '<s>[INST] What is the capital of France? [/INST] The capital of France is Paris.</s>',
  'Tabs\tand\nnewlines\r\nand   spaces   everywhere \t\n end',
  '   leading and trailing   ',
  'x'.repeat(300), 'ab'.repeat(200), ' '.repeat(100) + 'x', '9'.repeat(50), '😀'.repeat(40), '你'.repeat(100),
  'a\u0301'.repeat(30), 'Hello world! '.repeat(25), 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
];

// Deterministic combinations of fragments, for breadth.
const frags = [' ', '  ', '\n', '\t', 'the', 'The', 'THE', "'s", "'S", '123', '4567', '.', ',', '!', '?', '😀', '你好',
  'é', 'e\u0301', 'über', 'Ñ', '<s>', '</s>', '<|endoftext|>', '<|begin_of_text|>', '<|im_end|>', '▁', '\r\n', '\u00a0',
  '(', ')', '"', "'", '-', '_', '#', '@', 'x', 'Q', 'ǅ', 'ﬁ', '１', '٣', '\u200d', 'ſ', 'İ', 'ß'];
let seed = 12345;
function rnd(n) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
}
const combos = [];
for (let i = 0; i < 160; i++) {
  let s = '';
  const k = 1 + rnd(8);
  for (let j = 0; j < k; j++) s += frags[rnd(frags.length)];
  combos.push(s);
}

const all = [];
const seen = new Set();
for (const s of [...base, ...long, ...combos]) {
  if (!seen.has(s)) {
    seen.add(s);
    all.push(s);
  }
}
fs.writeFileSync(path.join(__dirname, 'strings.json'), JSON.stringify(all, null, 0).replace(/","/g, '",\n"') + '\n');
console.log(`${all.length} strings`);
