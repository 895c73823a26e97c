#!/usr/bin/env bash
# Usage ingestion benchmark (issue 5): UsageStore's batch path vs a raw COPY of the same rows into the same indexed
# table, against a throwaway PostgreSQL cluster with durable commits. Starts the cluster, builds and runs the
# package-benchmark target bench/Benchmarks/UsageIngest, writes bench/results/ingest-<date>.md, stops the cluster.
#
#   bench/run-ingest.sh                       # 1M events, 3 samples per benchmark (~5 min after the first build)
#   TOLLGATE_BENCH_EVENTS=200000 TOLLGATE_BENCH_SAMPLES=1 bench/run-ingest.sh    # a quick check
#
# Environment: TOLLGATE_BENCH_EVENTS (1000000), TOLLGATE_BENCH_SAMPLES (3), TOLLGATE_BENCH_BATCH (10000),
# OUT (results file), BUILD_TIMEOUT / RUN_TIMEOUT in seconds (2400 / 1200).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"

export TOLLGATE_BENCH_EVENTS=${TOLLGATE_BENCH_EVENTS:-1000000}
export TOLLGATE_BENCH_SAMPLES=${TOLLGATE_BENCH_SAMPLES:-3}
export TOLLGATE_BENCH_BATCH=${TOLLGATE_BENCH_BATCH:-10000}
OUT=${OUT:-$HERE/results/ingest-$(date -u +%Y-%m-%d).md}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
RUN_TIMEOUT=${RUN_TIMEOUT:-1200}

command -v swift >/dev/null || die "swift is not on PATH"
command -v python3 >/dev/null || die "python3 is needed to write the results table"

RUN=$(mktemp -d /tmp/tollgate-ingest.XXXXXX)
chmod 755 "$RUN"
PORT=$(free_port)
cleanup() {
    pg_stop "$RUN/pg"
    rm -rf "$RUN"
}
trap cleanup EXIT

log "building the benchmark (release; the first build takes several minutes)"
(cd "$HERE" && timeout "$BUILD_TIMEOUT" swift build -c release --product UsageIngest >"$RUN/build.log" 2>&1) \
    || die "build failed; last lines:
$(tail -30 "$RUN/build.log")"

log "starting a durable PostgreSQL cluster on 127.0.0.1:$PORT"
pg_start "$RUN/pg" "$PORT"
pg_psql "$PORT" -d postgres -c "CREATE DATABASE tollgate_bench"
SETTINGS=$(pg_psql "$PORT" -d postgres -At -F ' = ' -c \
    "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN
     ('fsync','synchronous_commit','full_page_writes','wal_level','shared_buffers','max_wal_size','checkpoint_timeout','wal_sync_method')
     ORDER BY name")
[ "$(pg_psql "$PORT" -d postgres -At -c 'SHOW fsync')" = on ] || die "fsync is not on"
[ "$(pg_psql "$PORT" -d postgres -At -c 'SHOW synchronous_commit')" = on ] || die "synchronous_commit is not on"

export TOLLGATE_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/tollgate_bench?sslmode=disable"
export TOLLGATE_BENCH_SUMMARY="$RUN/summary.tsv"
: >"$TOLLGATE_BENCH_SUMMARY"
log "running: $TOLLGATE_BENCH_EVENTS events x $TOLLGATE_BENCH_SAMPLES samples per benchmark, batches of $TOLLGATE_BENCH_BATCH"
set +e
(cd "$HERE" && timeout "$RUN_TIMEOUT" swift package -c release benchmark --target UsageIngest --no-progress) 2>&1 | tee "$RUN/benchmark.txt" >&2
STATUS=${PIPESTATUS[0]}
set -e
[ -s "$TOLLGATE_BENCH_SUMMARY" ] || die "the benchmark produced no samples (exit $STATUS); see the output above"

mkdir -p "$(dirname "$OUT")"
python3 - "$TOLLGATE_BENCH_SUMMARY" "$RUN/benchmark.txt" "$OUT" "$STATUS" <<PY
import statistics, sys, collections
summary, raw, out, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = collections.OrderedDict()
for line in open(summary):
    kind, conns, events, seconds, check, name = line.rstrip("\n").split("\t", 5)
    rows.setdefault((kind, int(conns)), {"name": name, "events": int(events), "seconds": [], "checks": []})
    rows[(kind, int(conns))]["seconds"].append(float(seconds))
    rows[(kind, int(conns))]["checks"].append(check)
def rate(key):
    r = rows.get(key)
    return r["events"] / statistics.median(r["seconds"]) if r else None
reference = rate(("raw-copy", 1))
failures = []
lines = []
lines.append("| benchmark | conns | samples | median s | events/s (median) | min–max events/s | vs raw COPY, 1 conn | vs raw COPY, same conns | zero loss |")
lines.append("|---|---|---|---|---|---|---|---|---|")
for (kind, conns), r in rows.items():
    if kind.startswith("paired"): continue
    med = statistics.median(r["seconds"])
    eps = r["events"] / med
    rates = [r["events"] / s for s in r["seconds"]]
    same = rate(("raw-copy", conns))
    ok = all(c == "ok" for c in r["checks"])
    if not ok: failures += [c for c in r["checks"] if c != "ok"]
    vs1 = f"{eps / reference:.0%}" if reference and kind != "raw-copy" else ("reference" if (kind, conns) == ("raw-copy", 1) else (f"{eps / reference:.0%}" if reference else "–"))
    vss = f"{eps / same:.0%}" if same and kind != "raw-copy" else "–"
    lines.append(f"| {r['name']} | {conns} | {len(r['seconds'])} | {med:.2f} | {eps:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | {vs1} | {vss} | {'yes' if ok else 'NO'} |")
paired = []
paired_ratio = {}
for conns in (1, 2):
    raw_r, store_r = rows.get(("paired-raw", conns)), rows.get(("paired-store", conns))
    if not raw_r or not store_r: continue
    ratios = [raw_s / store_s for raw_s, store_s in zip(raw_r["seconds"], store_r["seconds"])]
    paired_ratio[conns] = statistics.median(ratios)
    ok = all(c == "ok" for c in store_r["checks"])
    paired.append(f"| {conns} | {len(ratios)} | {raw_r['events'] / statistics.median(raw_r['seconds']):,.0f} | {store_r['events'] / statistics.median(store_r['seconds']):,.0f} | "
                  + ", ".join(f"{x:.0%}" for x in ratios) + f" | **{paired_ratio[conns]:.0%}** | {'yes' if ok else 'NO'} |")
targets = []
for conns in (1, 2):
    eps = rate(("store", conns))
    if eps is None: continue
    plural = "s" if conns > 1 else ""
    targets.append(f"| UsageStore.insert(copyText:), {conns} connection{plural} | ≥ 100,000 events/s | {eps:,.0f} (median of the standalone benchmark) | {'met' if eps >= 100000 else 'NOT met'} |")
    if conns in paired_ratio:
        r = paired_ratio[conns]
        targets.append(f"| same, vs raw COPY with {conns} connection{plural}, paired in each sample | ≥ 80 % | {r:.0%} (median of the paired ratios) | {'met' if r >= 0.8 else 'NOT met'} |")
    if reference and conns == 2:
        targets.append(f"| same, 2 connections vs raw COPY with 1 connection (the single-stream floor) | ≥ 80 % | {eps / reference:.0%} | {'met' if eps >= 0.8 * reference else 'NOT met'} |")
targets.append(f"| zero loss (ledger rows, ledger and rollup token sums checked after every sample) | 0 lost, 0 doubled | {'0 / 0' if not failures else '; '.join(failures)} | {'met' if not failures else 'NOT met'} |")
import os
env = os.environ
with open(out, "w") as f:
    f.write(f"""# Ingestion benchmark — {__import__('datetime').datetime.utcnow():%Y-%m-%d %H:%M} UTC

Usage events into PostgreSQL through \`UsageStore\` (fast path, for self-located rows — UUIDv7 ids minted in the
row's month, as the gateway's and these are: COPY straight into \`usage_events\`, then one statement that checks no id
of the batch is claimed in \`usage_request_ids\` and adds the batch's hourly groups, computed from the lines, to
\`usage_hourly\` and their days to \`usage_daily_rollup\` and books late usage; a batch holding a stored request id goes
through staging + \`INSERT … ON CONFLICT DO NOTHING\`; one transaction per batch), against a raw \`COPY\` of the same
rows into the same \`usage_events\` table: partitioned by UTC month (sql/0400; the events' month has its partition),
each partition unique on \`request_id\` (sql/0410, the ledger's idempotency key for self-located rows), B-tree on
\`(subscription_id, started_at)\`, BRIN on \`started_at\`. Every write is a durable commit. Each sample starts from empty tables (the replay: from all rows already stored) after a \`CHECKPOINT\`,
times the writes only, then checks that \`usage_events\` holds every event exactly once, that the request counts and
token sums of the ledger, \`usage_hourly\` and \`usage_daily_rollup\` equal the generated ones, and that every daily row
equals the sums of its hours.

Command: \`bench/run-ingest.sh\` (events per sample: {env['TOLLGATE_BENCH_EVENTS']}, samples: {env['TOLLGATE_BENCH_SAMPLES']},
batch: {env['TOLLGATE_BENCH_BATCH']} rows); harness: package-benchmark (\`bench/Benchmarks/UsageIngest\`).
Benchmark exit status: {status}.

## Targets (issue 5)

| what | target | measured | |
|---|---|---|---|
""" + "\n".join(targets) + """

## Paired samples: raw COPY, then the store, back to back

Each sample times a raw COPY of all rows and then \`UsageStore.insert(copyText:)\` writing the same rows (tables reset
between), so the ratio compares two figures taken seconds apart; other load on the machine moves both.

| conns | samples | raw COPY events/s (median) | store events/s (median) | store / raw COPY per sample | median | zero loss |
|---|---|---|---|---|---|---|
""" + "\n".join(paired) + """

## All figures (standalone benchmarks, run one after another)

""" + "\n".join(lines) + f"""

## Machine

$(machine_markdown)

PostgreSQL settings of the run:

\`\`\`
$SETTINGS
\`\`\`

<details><summary>package-benchmark output</summary>

\`\`\`
""" + open(raw).read().strip() + """
\`\`\`
</details>
""")
print(out)
PY
log "wrote $OUT"
[ "$STATUS" = 0 ] || die "package-benchmark exited with $STATUS" "$STATUS"
