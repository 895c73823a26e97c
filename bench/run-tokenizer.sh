#!/usr/bin/env bash
# Tokenizer throughput, single thread, side by side with tiktoken on the same text (issue 14: ahead of tiktoken on
# both encodings). Makes ≈ 4 MB of mixed prose, code and JSON (bench/tokenizer/make_text.py), times tiktoken's
# encode_ordinary on it (bench/tokenizer/tiktoken_throughput.py, vocabularies from the files Tollgate ships, so no
# network), then Tollgate's Tokenizer.encode in process (package-benchmark, bench/Benchmarks/Tokenizer, release), and
# writes bench/results/tokenizer-<date>.md. No database, no server.
#
#   flock /work/bench.lock bench/run-tokenizer.sh      # ≈ 6 min with the release build, ≈ 1 min after it
#
# Environment: SAMPLES (10, Swift iterations per encoding), ROUNDS (5, tiktoken runs per encoding), OUT.
# Needs: Swift 6.1+, python3 with tiktoken (pip install tiktoken==0.14.0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"

export TOLLGATE_BENCH_SAMPLES=${SAMPLES:-10}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-$HERE/results/tokenizer-$(date -u +%Y-%m-%d).md}
command -v swift >/dev/null || die "swift is not on PATH"
python3 -c "import tiktoken" 2>/dev/null || die "python3 with tiktoken is needed (pip install tiktoken==0.14.0)"

RUN=$(mktemp -d /tmp/tollgate-tokenizer.XXXXXX)
trap 'rm -rf "$RUN"' EXIT
export TOLLGATE_BENCH_TEXT="$RUN/text.txt" TOLLGATE_BENCH_SUMMARY="$RUN/swift.tsv"

log "making the benchmark text"
python3 "$HERE/tokenizer/make_text.py" "$TOLLGATE_BENCH_TEXT" >/dev/null
log "building the benchmark (release)"
(cd "$HERE" && swift build -c release --product Tokenizer >"$RUN/build.log" 2>&1) || die "benchmark build failed; last lines:
$(tail -30 "$RUN/build.log")"
log "tiktoken, $ROUNDS runs per encoding"
python3 "$HERE/tokenizer/tiktoken_throughput.py" "$TOLLGATE_BENCH_TEXT" "$ROUNDS" >"$RUN/tiktoken.tsv"
log "Tollgate, $TOLLGATE_BENCH_SAMPLES iterations per encoding"
(cd "$HERE" && swift package -c release benchmark --target Tokenizer --no-progress) >"$RUN/benchmark.txt" 2>&1 \
    || die "package-benchmark failed: $(tail -20 "$RUN/benchmark.txt")"

python3 - "$RUN/tiktoken.tsv" "$RUN/swift.tsv" "$RUN/benchmark.txt" "$OUT" "$(git -C "$HERE" rev-parse --short HEAD)" <<'PY'
import datetime, platform, re, statistics, subprocess, sys
tiktoken_tsv, swift_tsv, benchmark_txt, out, commit = sys.argv[1:6]
reference = {}
for line in open(tiktoken_tsv):
    name, size, tokens, median, best = line.split("\t")
    reference[name] = (int(size), int(tokens), float(median))
runs, loads = {}, {}
for line in open(swift_tsv):
    fields = line.rstrip("\n").split("\t")
    if fields[0] == "load":
        loads.setdefault(fields[1], []).append(float(fields[2]))
        continue
    name, size, tokens, seconds = fields
    runs.setdefault(name, []).append((int(size), int(tokens), float(seconds)))
import tiktoken
rows, verdicts = [], []
for name in ("cl100k_base", "o200k_base"):
    size, tokens, seconds = reference[name]
    samples = runs[name]
    swift_seconds = statistics.median(s for _, _, s in samples)
    swift_tokens = samples[0][1]
    mb = size / 1e6
    rows.append(f"| {name} | tiktoken {tiktoken.__version__} `encode_ordinary` | {mb / seconds:.1f} | {tokens / seconds / 1e6:.2f} | {seconds * 1000:.0f} | {tokens:,} |")
    rows.append(f"| {name} | Tollgate `Tokenizer.encode` | {mb / swift_seconds:.1f} | {swift_tokens / swift_seconds / 1e6:.2f} | {swift_seconds * 1000:.0f} | {swift_tokens:,} |")
    ratio = seconds / swift_seconds
    same = "same token count" if swift_tokens == tokens else f"TOKEN COUNTS DIFFER ({swift_tokens} vs {tokens})"
    verdicts.append(f"- {name}: Tollgate {ratio:.2f}× tiktoken's throughput ({'met' if ratio > 1 else 'NOT met'}); {same}.")
# package-benchmark's table, without compiler progress lines and colour codes.
quoted = "\n".join(re.sub("\x1b\\[[0-9;]*m", "", l) for l in open(benchmark_txt).read().strip().splitlines() if not l.startswith("["))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
with open(out, "w") as f:
    f.write(f"""# Tokenizer throughput — {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

Single thread, the same {size / 1e6:.2f} MB of text for both (bench/tokenizer/make_text.py: the repository's Markdown,
Swift sources and CPython's standard library, seeded JSON chat bodies with some non-English text), whole text per call.
tiktoken: median of its runs; Tollgate: median of package-benchmark's iterations (release build). Commit {commit},
{cpu}, {platform.python_implementation()} {platform.python_version()}. Run by `bench/run-tokenizer.sh`.

| encoding | tokenizer | MB/s | M tokens/s | ms per call | tokens |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Loading, once per process on first use (median of {len(loads.get("cl100k_base", []))} processes): o200k_base
{statistics.median(loads["o200k_base"]) * 1000:.0f} ms (loaded first, so this includes building the Unicode class table),
cl100k_base {statistics.median(loads["cl100k_base"]) * 1000:.0f} ms.

Target (issue 14): ahead of tiktoken on both encodings.
{chr(10).join(verdicts)}

<details><summary>package-benchmark output</summary>

```
{quoted}
```
</details>
""")
print(open(out).read())
PY
log "wrote $OUT"
