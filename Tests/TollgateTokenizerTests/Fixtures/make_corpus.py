#!/usr/bin/env python3
"""Writes parity-corpus.json.gz: varied strings and tiktoken's ids for each under cl100k_base and o200k_base.

Deterministic (fixed seed). tiktoken is the reference; no network is needed: both encodings are built from the
vocabulary files Tollgate ships (Sources/TollgateTokenizer/Resources), with the patterns and special tokens copied
from tiktoken_ext/openai_public.py, so the fixture checks the Swift code against tiktoken on the very same data.

    pip install tiktoken==0.14.0
    python3 Tests/TollgateTokenizerTests/Fixtures/make_corpus.py

Output (gzip of one JSON object): {"tiktoken": version, "cases": [{"text": str, "cl100k_base": [ids], "o200k_base": [ids]}]}
"""

import gzip
import json
import os
import random
import unicodedata

import tiktoken
from tiktoken.load import load_tiktoken_bpe

HERE = os.path.dirname(os.path.abspath(__file__))
RESOURCES = os.path.join(HERE, "..", "..", "..", "Sources", "TollgateTokenizer", "Resources")

CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


def encoding(name, pattern, sha256, special_tokens):
    ranks = load_tiktoken_bpe(os.path.join(RESOURCES, f"{name}.tiktoken"), expected_hash=sha256)
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)


def encodings():
    cl100k = encoding("cl100k_base", CL100K_PATTERN, "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                      {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                       "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276})
    o200k = encoding("o200k_base", O200K_PATTERN, "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                     {"<|endoftext|>": 199999, "<|endofprompt|>": 200018})
    return cl100k, o200k


# Script ranges (assigned since long before Unicode 14, so every engine's tables agree on them).
SCRIPTS = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A)],
    "latin1": [(0xC0, 0xFF)],
    "latinext": [(0x100, 0x17F), (0x180, 0x24F)],
    "ipa": [(0x250, 0x2AF)],
    "modifiers": [(0x2B0, 0x2FF)],
    "combining": [(0x300, 0x36F)],
    "greek": [(0x391, 0x3A9), (0x3B1, 0x3C9), (0x3D0, 0x3FF)],
    "cyrillic": [(0x400, 0x4FF)],
    "armenian": [(0x531, 0x556), (0x561, 0x587)],
    "hebrew": [(0x591, 0x5C7), (0x5D0, 0x5EA)],
    "arabic": [(0x600, 0x6FF)],
    "devanagari": [(0x900, 0x97F)],
    "bengali": [(0x980, 0x9FB)],
    "tamil": [(0xB82, 0xBFA)],
    "thai": [(0xE01, 0xE5B)],
    "georgian": [(0x10A0, 0x10FF)],
    "hangul": [(0xAC00, 0xD7A3)],
    "hangul_jamo": [(0x1100, 0x11FF)],
    "ethiopic": [(0x1200, 0x137C)],
    "cherokee": [(0x13A0, 0x13F5)],
    "hiragana": [(0x3041, 0x3096)],
    "katakana": [(0x30A1, 0x30FA)],
    "cjk": [(0x4E00, 0x9FFF)],
    "cjk_ext_b": [(0x20000, 0x2A6DF)],
    "fullwidth": [(0xFF01, 0xFF5E)],
    "digits": [(0x30, 0x39), (0x660, 0x669), (0x966, 0x96F), (0xFF10, 0xFF19), (0x2160, 0x2188), (0xB2, 0xB3), (0xBC, 0xBE), (0x2070, 0x2079)],
    "math": [(0x2200, 0x22FF), (0x1D400, 0x1D7FF)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E), (0x2010, 0x205E), (0x3000, 0x303F), (0xA1, 0xBF)],
    "space": [(0x20, 0x20), (0x09, 0x0D), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0x85, 0x85)],
    "controls": [(0x00, 0x08), (0x0E, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F), (0xFEFF, 0xFEFF)],
    "symbols": [(0x2190, 0x21FF), (0x2500, 0x257F), (0x25A0, 0x25FF), (0x2600, 0x26FF), (0x20A0, 0x20BF)],
    "private": [(0xE000, 0xE0FF)],
}

EMOJI = ["😀", "😂", "🥲", "🤖", "🚀", "🔥", "❤️", "👍", "🎉", "🙏", "🇺🇸", "🇯🇵", "🇩🇪", "🏳️‍🌈", "🏴‍☠️",
         "👨‍👩‍👧‍👦", "👩‍💻", "🧑‍🚀", "👩🏽‍🔬", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "🤝🏿", "1️⃣", "#️⃣", "©️", "™️",
         "🧔‍♀️", "🐻‍❄️", "❤️‍🔥", "🫠", "🫶🏾", "🧑🏻‍🤝‍🧑🏿", "☺️", "✌🏽", "🏃‍♂️", "🕵️‍♀️", "🇪🇺", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find long down day did get come "
         "made may part tokenizer gateway budget subscription reservation Ünïcödé naïve café façade résumé coöperate "
         "Straße Größe Москва привет мир Ελλάδα καλημέρα שלום مرحبا नमस्ते 你好 世界 こんにちは 안녕하세요 สวัสดี").split()

CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'Ve", "'m", "'M", "'ll", "'LL", "'Ll",
                "'lL", "'d", "'D", "'ſ", "'x", "'", "''", "’s", "'st", "'llama", "'dd"]

CODE = [
    'def add(a, b):\n    """Return a + b."""\n    return a + b\n',
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "func encode(_ text: String) -> [Int] {\n    guard !text.isEmpty else { return [] }\n    return tokens(text)\n}\n",
    "SELECT coalesce(sum(cost), 0) FROM usage_events WHERE subscription_id = $1 AND occurred_at >= $2;\n",
    "const x = await fetch(`/v1/chat/completions`, { method: 'POST', body: JSON.stringify(req) });\r\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "<div class=\"note\">\n  <a href=\"https://example.com/a/b?c=d&e=f\">link</a>\n</div>\n",
    "if [ -z \"$HOME\" ]; then echo 'no home' >&2; exit 1; fi\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, 世界\")\n}\n",
    "  - name: tollgate\n    image: tollgate:0.1.0\n    ports: [\"8080:8080\"]\n",
    "x = [1, 2, 3]  # trailing spaces   \n\n\n   y = {'a': 1}\t\t\n",
    "// comment with URL http://a.b/c//d///e\n/* block */ a /= b; c //= d;\n",
    "public static void Main(string[] args) { Console.WriteLine(\"Hi\"); }\n",
    "$ curl -sS -H 'Authorization: Bearer tg_abc123' http://127.0.0.1:8080/v1/models | jq .\n",
]


def from_ranges(rng, ranges):
    lo, hi = rng.choice(ranges)
    while True:
        c = rng.randint(lo, hi)
        ch = chr(c)
        cat = unicodedata.category(ch)
        if cat not in ("Cn", "Cs"):
            return ch


def random_script_text(rng):
    names = rng.sample(sorted(SCRIPTS), rng.randint(1, 4))
    out = []
    for _ in range(rng.randint(1, 24)):
        name = rng.choice(names + ["space", "punct"])
        out.append("".join(from_ranges(rng, SCRIPTS[name]) for _ in range(rng.randint(1, 8))))
    return "".join(out)


def prose(rng):
    out = []
    for _ in range(rng.randint(1, 40)):
        w = rng.choice(WORDS)
        r = rng.random()
        if r < 0.1:
            w = w.upper()
        elif r < 0.2:
            w = w.capitalize()
        if rng.random() < 0.1:
            w += rng.choice(CONTRACTIONS)
        if rng.random() < 0.1:
            w += rng.choice([",", ".", "!", "?", ";", ":", "...", " —", "\"", ")", "!?", "?!"])
        out.append(w)
        out.append(rng.choice([" ", " ", " ", " ", "  ", "\n", "\t", "\r\n", " \n", "\n\n", "   "]))
    return "".join(out)


def emoji_text(rng):
    parts = []
    for _ in range(rng.randint(1, 20)):
        parts.append(rng.choice(EMOJI) if rng.random() < 0.6 else rng.choice(WORDS))
        parts.append(rng.choice(["", " ", "  ", "\n", "!"]))
    return "".join(parts)


def whitespace_text(rng):
    pieces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028", "\x0b", "\x0c"]
    s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
    if rng.random() < 0.7:
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
        s = rng.choice(pieces).join(words) + s if rng.random() < 0.5 else s + rng.choice(pieces).join(words) + s
    return s


def digits_text(rng):
    kind = rng.random()
    if kind < 0.4:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 200)))
    if kind < 0.6:
        return f"{rng.randint(0, 10**12)}.{rng.randint(0, 10**6)} {rng.choice(['USD', 'EUR', '%', 'ms', 'MB/s'])}"
    if kind < 0.8:
        return "".join(from_ranges(rng, SCRIPTS["digits"]) for _ in range(rng.randint(1, 40)))
    return f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}, 2026-12-04T04:{rng.randint(10, 59)}:00Z"


def long_word(rng):
    kind = rng.random()
    if kind < 0.25:
        return rng.choice("aAzé我") * rng.randint(50, 1500)
    if kind < 0.5:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(30, 600)))
    if kind < 0.75:
        return "".join(from_ranges(rng, SCRIPTS[rng.choice(["cyrillic", "greek", "latinext", "hangul", "devanagari"])]) for _ in range(rng.randint(30, 300)))
    return rng.choice(["Supercalifragilisticexpialidocious", "Donaudampfschifffahrtsgesellschaftskapitän",
                       "pneumonoultramicroscopicsilicovolcanoconiosis", "ABCDEFabcdefABCDEF"]) * rng.randint(1, 12)


def punct_text(rng):
    chars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~/¡¿«»—–…·•‘’“”"
    s = "".join(rng.choice(chars + " \n\r/") for _ in range(rng.randint(1, 80)))
    return s if rng.random() < 0.5 else rng.choice(WORDS) + s + rng.choice(WORDS)


def json_text(rng):
    def value(depth):
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice([rng.randint(-10**9, 10**9), rng.random(), True, False, None, rng.choice(WORDS), prose(rng)[:40]])
        if r < 0.65:
            return {rng.choice(WORDS) + str(i): value(depth + 1) for i in range(rng.randint(0, 5))}
        return [value(depth + 1) for _ in range(rng.randint(0, 5))]
    doc = value(0)
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2, 4, "\t"]))


def marks_text(rng):
    base = rng.choice(WORDS)
    out = []
    for ch in base:
        out.append(ch)
        for _ in range(rng.randint(0, 3)):
            out.append(from_ranges(rng, [(0x300, 0x36F), (0x1AB0, 0x1ABE), (0x20D0, 0x20F0), (0x93E, 0x94D), (0x5B0, 0x5BD)]))
    s = "".join(out)
    return rng.choice(["", " ", "!", "\n", "'", "x"]) + s + rng.choice(["", " ", "'s", "'LL", "\n", "9"])


def mixed(rng):
    gens = [prose, random_script_text, emoji_text, whitespace_text, digits_text, punct_text, marks_text]
    return "".join(rng.choice(gens)(rng) for _ in range(rng.randint(2, 5)))


def special_text(rng):
    return rng.choice(["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|im_start|>"]) + rng.choice(["", " hello", "\n"])


GENERATORS = [
    (prose, 1800), (random_script_text, 2000), (emoji_text, 700), (lambda r: r.choice(CODE) * r.randint(1, 3), 500),
    (whitespace_text, 900), (digits_text, 700), (long_word, 250), (punct_text, 800), (json_text, 500),
    (marks_text, 600), (mixed, 1200), (special_text, 50),
]


def corpus():
    rng = random.Random(20261204)
    cases = ["", " ", "\n", "\r\n", "a", "I'm", "IT'S", "We'LL", "ſ", "'ſ", "hello world", "   trailing   ", "\t\t\n \n  ",
             "1234567890", "x" * 10000] + CODE + [c + w for c in CONTRACTIONS for w in ["", "abc", " ", "ABC"]]
    for gen, n in GENERATORS:
        cases.extend(gen(rng) for _ in range(n))
    return cases


def main():
    cl100k, o200k = encodings()
    cases = corpus()
    out = {"tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "unknown", "cases": []}
    for text in cases:
        out["cases"].append({"text": text, "cl100k_base": cl100k.encode_ordinary(text), "o200k_base": o200k.encode_ordinary(text)})
    path = os.path.join(HERE, "parity-corpus.json.gz")
    data = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{len(cases)} strings, {sum(len(t.encode()) for t in cases)} bytes, {len(data)} bytes of JSON -> {path}")


if __name__ == "__main__":
    main()
