#!/usr/bin/env python3
"""Writes the "corpus that hurts" for the tokenizer tests: a JSON array of strings
(CJK, Arabic, Cyrillic, Korean, emoji sequences, decomposed accents, whitespace
runs, \\r\\n, digit runs, code, JSON, inline special tokens, random code points).
Deterministic (fixed seed). Expected ids come from the peer, tools/tokenizer_peer.js;
tools/make_tokenizer_corpus.sh runs both."""
import json
import random
import sys

rng = random.Random(20261128)

FIXED = [
    "你好，世界！这是一个测试。中文分词没有空格。",
    "日本語のテキスト、カタカナとひらがな。東京都",
    "한국어 문장입니다. 띄어쓰기가 있습니다! 가나다라마바사",
    "مرحبا بالعالم، هذا اختبار للنص العربي ١٢٣٤٥",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Ελληνικά: Γειά σου Κόσμε; ΑΒΓΔ",
    "עברית: שלום עולם",
    "हिन्दी में पाठ: नमस्ते दुनिया",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag, 🇫🇷🇯🇵 flags, ❤️‍🔥, 🧑🏿‍💻",
    "e\u0301cole cafe\u0301 n\u0303 A\u030a \u1e9b\u0323 \u0041\u030c\u0323",  # decomposed accents
    "\u212b \u2126 \ufb01 \u00c5 \u1e69",  # compatibility / singletons
    "   leading spaces and trailing spaces   ",
    "tabs\tand\t\tmore\t\t\ttabs\t",
    "windows\r\nline\r\n\r\nendings\r\n",
    "mixed \n\n\n   \n\t\n  newlines   \n",
    "                                                   many spaces",
    "1234567890123456789012345678901234567890 digits 3.14159 1,000,000 0x1F 1e-9",
    "int main(int argc, char** argv) {\n    for (int i = 0; i < argc; ++i) printf(\"%s\\n\", argv[i]);\n    return 0;\n}\n",
    "def f(x):\n\tif x:\n\t\treturn [y**2 for y in range(x)]  # comment\n",
    '{"key": "value", "n": [1, 2, 3.5e10], "nested": {"a": null, "b": true}, "u": "\\u00e9"}',
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "inline<|endoftext|>special<|im_end|>tokens <|im_start|> with spaces",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>",
    "partial <|im_star and <|endoftext and <| |>",
    "I'm you're he'll we've she'd it's I'M YOU'RE HE'LL WE'VE SHE'D IT'S",
    "don't Don'T DON'T ſ 'ſ 'S 'ſ",
    "\u00a0nbsp\u2003em space\u3000ideographic\u200bzero width\u2028line sep\u2029para\u0085nel",
    "\u180e mongolian\u180evowel \ufeffbom\ufeff",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
    "Ünïcödé Çàfé naïve résumé façade",
    "a\u0308\u0301 o\u0302\u0323 multiple combining marks",
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇",
    "\x00\x01\x02\x1f\x7f control chars",
    "https://example.com/path?query=1&b=2#frag user@example.org",
    "$$ \\frac{a}{b} = \\sum_{i=0}^{n} x_i^2 $$",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛",
    "١٢٣ ४५६ ๗๘๙ ⅫⅩ ½ ² ³",
    "",
    " ",
    "\n",
    "a",
    "x" * 300,
    "ab" * 200,
    "🙂" * 50,
]

RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
          (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF),
          (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x300, 0x36F)]


def random_text(n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(rng.choice([" ", "  ", "\n", "\t", "\r\n", "   "]))
        elif r < 0.15:
            out.append(rng.choice(["'s", "'LL", "<|im_end|>", "<|endoftext|>", "123", "\u200d"]))
        else:
            lo, hi = rng.choice(RANGES)
            out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def main():
    texts = list(FIXED)
    for _ in range(150):
        texts.append(random_text(rng.randint(1, 120)))
    # Any scalar value at all (no surrogates): exercises unassigned and private-use code points.
    for _ in range(50):
        s = []
        for _ in range(rng.randint(1, 30)):
            cp = rng.randint(1, 0x10FFFF)
            while 0xD800 <= cp <= 0xDFFF:
                cp = rng.randint(1, 0x10FFFF)
            s.append(chr(cp))
        texts.append("".join(s))
    json.dump(texts, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
