#!/usr/bin/env python3
"""Writes the tokenizer benchmark's text: about 4 MB of mixed prose, code and JSON, the same bytes on every run of the
same checkout (the repository's own Markdown and Swift, CPython 3.11's standard library as Python code, and seeded
JSON chat bodies with some non-English text).

    python3 bench/tokenizer/make_text.py OUT
"""

import glob
import json
import os
import random
import sys
import sysconfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET_PART = 1_400_000  # bytes per kind


def take(paths, limit):
    out, size = [], 0
    while size < limit:
        for path in paths:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            out.append(text)
            size += len(text.encode())
            if size >= limit:
                break
    return "".join(out)


def prose():
    paths = sorted(glob.glob(os.path.join(ROOT, "**", "*.md"), recursive=True))
    paths = [p for p in paths if "/.build/" not in p and "/results/" not in p]
    return take(paths, TARGET_PART)


def code():
    stdlib = sysconfig.get_paths()["stdlib"]
    python = sorted(glob.glob(os.path.join(stdlib, "*.py")))
    swift = sorted(glob.glob(os.path.join(ROOT, "Sources", "**", "*.swift"), recursive=True))
    return take(swift, TARGET_PART // 3) + take(python, TARGET_PART * 2 // 3)


def chat_json():
    rng = random.Random(20261204)
    words = ("the budget for this subscription resets at the start of the month and the gateway counts every token "
             "Straße café naïve Москва привет 你好 世界 こんにちは 안녕하세요 مرحبا नमस्ते 🙂 🚀").split()
    out, size = [], 0
    while size < TARGET_PART:
        body = {
            "model": rng.choice(["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4"]),
            "messages": [
                {"role": rng.choice(["system", "user", "assistant"]),
                 "content": " ".join(rng.choice(words) for _ in range(rng.randint(5, 120)))}
                for _ in range(rng.randint(1, 6))
            ],
            "max_tokens": rng.randint(16, 4096),
            "temperature": round(rng.random(), 2),
            "metadata": {"team": f"team-{rng.randint(1, 40)}", "request": rng.getrandbits(64)},
        }
        text = json.dumps(body, ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, 2])) + "\n"
        out.append(text)
        size += len(text.encode())
    return "".join(out)


def main():
    text = prose() + code() + chat_json()
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{len(text.encode())} bytes")


if __name__ == "__main__":
    main()
