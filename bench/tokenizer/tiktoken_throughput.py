#!/usr/bin/env python3
"""tiktoken's single-thread throughput on the benchmark text: encode_ordinary of the whole text, ROUNDS times, for
both encodings built from the vocabulary files Tollgate ships (no network). Prints one TSV line per encoding:
encoding, bytes, tokens, median seconds, best seconds.

    python3 bench/tokenizer/tiktoken_throughput.py TEXT [ROUNDS]
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "TollgateTokenizerTests", "Fixtures"))
import make_corpus  # noqa: E402  (the encodings, with openai_public.py's patterns)

text = open(sys.argv[1], encoding="utf-8").read()
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
size = len(text.encode())
cl100k, o200k = make_corpus.encodings()
for name, encoding in (("cl100k_base", cl100k), ("o200k_base", o200k)):
    encoding.encode_ordinary(text[:100_000])  # warm-up
    times, tokens = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        tokens = len(encoding.encode_ordinary(text))
        times.append(time.perf_counter() - started)
    print(f"{name}\t{size}\t{tokens}\t{statistics.median(times):.6f}\t{min(times):.6f}", flush=True)
