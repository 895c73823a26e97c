#!/usr/bin/env bash
# Monthly chargeback benchmark (issue 5: ≤ 100 ms at 10M events, flat as events grow; a raw scan takes seconds).
# Starts a throwaway durable PostgreSQL cluster, migrates it with the tollgate binary of this checkout, generates
# October 2026 with bench/chargeback/generate.sql (1M events, then 9M more: 10M), and at each size times:
#   1. in process (package-benchmark, bench/Benchmarks/Chargeback): ChargebackStore.facts and ChargebackReport.generate
#      as CSV by team, JSON by subscription and FOCUS, one connection, SAMPLES calls each;
#   2. the CLI end to end (`tollgate report chargeback …`: process start, connect, schema check, report), CLI_RUNS each;
#   3. the `reporting` views through psql, and a raw scan of usage_events for the same month (the reference);
# then writes bench/results/chargeback-<date>.md and stops the cluster.
#
#   bench/run-chargeback.sh                                   # ≈ 25 min with both release builds, ≈ 8 min after them
#   SMALL=100000 LARGE=1000000 SAMPLES=5 bench/run-chargeback.sh   # a quick check
#
# Environment: SMALL (1000000) and LARGE (10000000) events, SAMPLES (30), CLI_RUNS (10), PSQL_RUNS (10), RAW_RUNS (3),
# TOLLGATE_BIN (default: build .build/release/tollgate here), OUT, BUILD_TIMEOUT / RUN_TIMEOUT in seconds (2400 / 2400).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib/common.sh"

SMALL=${SMALL:-1000000}
LARGE=${LARGE:-10000000}
export TOLLGATE_BENCH_SAMPLES=${SAMPLES:-30}
CLI_RUNS=${CLI_RUNS:-10}
PSQL_RUNS=${PSQL_RUNS:-10}
RAW_RUNS=${RAW_RUNS:-3}
OUT=${OUT:-$HERE/results/chargeback-$(date -u +%Y-%m-%d).md}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
RUN_TIMEOUT=${RUN_TIMEOUT:-2400}
[ "$SMALL" -lt "$LARGE" ] || die "SMALL ($SMALL) must be below LARGE ($LARGE)"

command -v swift >/dev/null || die "swift is not on PATH"
command -v python3 >/dev/null || die "python3 is needed to time the runs and write the results table"

RUN=$(mktemp -d /tmp/tollgate-chargeback.XXXXXX)
chmod 755 "$RUN"
PORT=$(free_port)
cleanup() {
    pg_stop "$RUN/pg"
    if [ -n "${KEEP_RUN:-}" ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
# Everything after the builds runs under one deadline, so a wedged step cannot hold the machine.
DEADLINE=$((SECONDS + BUILD_TIMEOUT + RUN_TIMEOUT))
left() { local n=$((DEADLINE - SECONDS)); [ "$n" -gt 0 ] || die "out of time (BUILD_TIMEOUT + RUN_TIMEOUT)"; echo "$n"; }

if [ -z "${TOLLGATE_BIN:-}" ]; then
    log "building tollgate (release; from scratch this takes several minutes)"
    (cd "$ROOT" && timeout "$BUILD_TIMEOUT" swift build -c release --product tollgate >"$RUN/build-tollgate.log" 2>&1) \
        || die "tollgate build failed; last lines:
$(tail -30 "$RUN/build-tollgate.log")"
    TOLLGATE_BIN="$ROOT/.build/release/tollgate"
fi
[ -x "$TOLLGATE_BIN" ] || die "no tollgate binary at $TOLLGATE_BIN"
log "building the in-process benchmark (release)"
(cd "$HERE" && timeout "$BUILD_TIMEOUT" swift build -c release --product Chargeback >"$RUN/build-bench.log" 2>&1) \
    || die "benchmark build failed; last lines:
$(tail -30 "$RUN/build-bench.log")"

log "starting a durable PostgreSQL cluster on 127.0.0.1:$PORT"
pg_start "$RUN/pg" "$PORT"
pg_psql "$PORT" -d postgres -c "CREATE DATABASE tollgate_bench"
[ "$(pg_psql "$PORT" -d postgres -At -c 'SHOW fsync')" = on ] || die "fsync is not on"
SETTINGS=$(pg_psql "$PORT" -d postgres -At -F ' = ' -c \
    "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN
     ('fsync','synchronous_commit','full_page_writes','shared_buffers','work_mem','max_parallel_workers_per_gather','jit')
     ORDER BY name")
export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/tollgate_bench?sslmode=disable"
export TOLLGATE_BENCH_DATABASE_URL=$DATABASE_URL
timeout 60 "$TOLLGATE_BIN" migrate >"$RUN/migrate.log" 2>&1 || die "tollgate migrate failed: $(tail -5 "$RUN/migrate.log")"
SCHEMA=$(pg_psql "$PORT" -d tollgate_bench -At -c "SELECT max(version) FROM tollgate_schema_migrations" 2>/dev/null || echo "?")

SUMMARY="$RUN/summary.tsv"   # label, kind, what, seconds
export TOLLGATE_BENCH_SUMMARY="$RUN/inprocess.tsv"
: >"$SUMMARY"
: >"$TOLLGATE_BENCH_SUMMARY"
: >"$RUN/sizes.tsv"
: >"$RUN/benchmark.txt"
: >"$RUN/explain.txt"

label_of() { python3 -c "n=$1; print(f'{n/1e6:g}M' if n >= 1e6 else f'{n/1e3:g}k')"; }

# time_runs LABEL KIND WHAT RUNS -- COMMAND…: wall time of each run of COMMAND (stdout discarded), one summary line per run.
time_runs() {
    local label=$1 kind=$2 what=$3 runs=$4; shift 5
    python3 - "$label" "$kind" "$what" "$runs" "$SUMMARY" "$@" <<'PY'
import subprocess, sys, time
label, kind, what, runs, summary, cmd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:]
with open(summary, "a") as out:
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        out.write(f"{label}\t{kind}\t{what}\t{time.perf_counter() - started:.6f}\n")
PY
}

# psql_times LABEL RUNS views|raw: each `-- name:` block of chargeback/queries.sql, RUNS times in one psql session
# (\timing: the query and its result reaching psql, without psql's start and connect).
psql_times() {
    local label=$1 runs=$2 filter=$3
    python3 - "$label" "$runs" "$filter" "$SUMMARY" "$HERE/chargeback/queries.sql" "$PG_BINDIR/psql" "$PORT" "$(left)" <<'PY'
import re, subprocess, sys
label, runs, filt, summary, queries, psql, port, left = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], int(sys.argv[8])
blocks = re.findall(r"^-- name: ([^\n]*)\n(.*?)(?=^-- name:|\Z)", open(queries).read(), re.S | re.M)
with open(summary, "a") as out:
    for name, sql in blocks:
        if (filt == "raw") != name.startswith("raw scan"):
            continue
        script = "\\timing on\n" + (sql.strip().rstrip(";") + " \\g /dev/null\n") * runs
        result = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "tollgate_bench"],
                                input=script, capture_output=True, text=True, check=True, timeout=left)
        for ms in re.findall(r"^Time: ([0-9.]+) ms", result.stdout, re.M):
            out.write(f"{label}\tpsql\t{name}\t{float(ms) / 1000:.6f}\n")
PY
}

for target in "$SMALL" "$LARGE"; do
    label=$(label_of "$target")
    have=$(pg_psql "$PORT" -d tollgate_bench -At -c "SELECT count(*) FROM usage_events")
    log "generating $((target - have)) events (to $label) through the usage writer's rollup statement"
    started=$SECONDS
    timeout "$(left)" "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d tollgate_bench -v events=$((target - have)) -v seed="$target" \
        -f "$HERE/chargeback/generate.sql" >"$RUN/generate-$label.log" 2>&1 || die "generate.sql failed: $(tail -5 "$RUN/generate-$label.log")"
    generated=$((SECONDS - started))
    grep -q '^rollup check: 0 hourly and 0 daily rows differ' "$RUN/generate-$label.log" || die "rollup check failed: $(grep 'rollup check' "$RUN/generate-$label.log")"
    pg_psql "$PORT" -d tollgate_bench -At -F $'\t' -c "SELECT '$label', (SELECT count(*) FROM usage_events), (SELECT count(*) FROM usage_hourly),
        (SELECT count(*) FROM usage_daily_rollup), pg_size_pretty(pg_total_relation_size('usage_events')), $generated,
        (SELECT count(*) FROM tollgate_chargeback_facts('2026-10-01T00:00:00Z'))" >>"$RUN/sizes.tsv"
    # The rollup-based report and a raw scan of the ledger must agree on every team's pay-as-you-go cost.
    mismatched=$(pg_psql "$PORT" -d tollgate_bench -At -c "
        WITH report AS (SELECT team, sum(cost) AS cost FROM reporting.chargeback_monthly
                        WHERE period_start = '2026-10-01T00:00:00Z' AND charge_type = 'usage' GROUP BY team),
        raw AS (SELECT e.team, sum(((e.prompt_tokens - e.cached_tokens) * p.input_per_1m + e.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
                    + e.completion_tokens * p.output_per_1m) * 0.000001) AS cost
                FROM usage_events e JOIN model_price_versions p ON p.model = e.model AND p.backend = '' AND p.deployment = ''
                    AND e.started_at >= p.effective_from AND e.started_at < p.effective_to
                WHERE e.started_at >= '2026-10-01T00:00:00Z' AND e.started_at < '2026-11-01T00:00:00Z'
                    AND e.backend NOT IN (SELECT backend FROM ptu_commitments WHERE monthly_amount > 0)
                GROUP BY e.team)
        SELECT count(*) FROM ((SELECT * FROM report EXCEPT SELECT * FROM raw) UNION ALL (SELECT * FROM raw EXCEPT SELECT * FROM report)) x")
    [ "$mismatched" = 0 ] || die "the report and a raw scan disagree on $mismatched team costs at $label"
    echo "$label" >>"$RUN/agreed"
    pg_psql "$PORT" -d tollgate_bench -c "CHECKPOINT"

    log "$label: in process, $TOLLGATE_BENCH_SAMPLES calls per path"
    echo "### $label" >>"$RUN/benchmark.txt"
    set +e
    (cd "$HERE" && TOLLGATE_BENCH_LABEL=$label timeout "$(left)" swift package -c release benchmark --target Chargeback --no-progress) \
        >>"$RUN/benchmark.txt" 2>&1
    status=$?
    set -e
    [ "$status" = 0 ] || die "package-benchmark exited with $status: $(tail -20 "$RUN/benchmark.txt")"

    log "$label: CLI end to end, $CLI_RUNS runs per format"
    time_runs "$label" cli "tollgate report chargeback --group-by team --format csv" "$CLI_RUNS" -- \
        timeout 60 "$TOLLGATE_BIN" report chargeback --period 2026-10 --group-by team --format csv
    time_runs "$label" cli "tollgate report chargeback --group-by subscription --format json" "$CLI_RUNS" -- \
        timeout 60 "$TOLLGATE_BIN" report chargeback --period 2026-10 --group-by subscription --format json
    time_runs "$label" cli "tollgate report chargeback --format focus" "$CLI_RUNS" -- \
        timeout 60 "$TOLLGATE_BIN" report chargeback --period 2026-10 --format focus
    # The fixed part of every CLI run: process start and argument parsing, without a database.
    time_runs "$label" cli-start "tollgate --version (process start only)" "$CLI_RUNS" -- timeout 60 "$TOLLGATE_BIN" --version

    log "$label: reporting views through psql, $PSQL_RUNS runs each; raw scan, $RAW_RUNS runs"
    psql_times "$label" "$PSQL_RUNS" views
    psql_times "$label" "$RAW_RUNS" raw
    {
        echo "### $label: the report's query"
        pg_psql "$PORT" -d tollgate_bench -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM tollgate_chargeback_facts('2026-10-01T00:00:00Z')"
        echo "### $label: reporting.chargeback_monthly for one month"
        pg_psql "$PORT" -d tollgate_bench -c "EXPLAIN (ANALYZE, BUFFERS) SELECT team, charge_type, sum(cost) FROM reporting.chargeback_monthly
            WHERE period_start = '2026-10-01T00:00:00Z' GROUP BY 1, 2"
        echo "### $label: reporting.usage_daily, one month by day"
        pg_psql "$PORT" -d tollgate_bench -c "EXPLAIN (ANALYZE, BUFFERS) SELECT usage_date, sum(list_cost), sum(total_tokens)
            FROM reporting.usage_daily WHERE usage_date >= '2026-10-01' AND usage_date < '2026-11-01' GROUP BY 1"
    } >>"$RUN/explain.txt" 2>&1
done

mkdir -p "$(dirname "$OUT")"
export SMALL LARGE SMALL_LABEL=$(label_of "$SMALL") LARGE_LABEL=$(label_of "$LARGE") SCHEMA CLI_RUNS PSQL_RUNS RAW_RUNS
export TOLLGATE_BIN_SHOWN=${TOLLGATE_BIN#"$ROOT/"}
python3 - "$SUMMARY" "$TOLLGATE_BENCH_SUMMARY" "$RUN/sizes.tsv" "$RUN/benchmark.txt" "$RUN/explain.txt" "$OUT" <<PY
import collections, os, statistics, sys
summary, inproc, sizes, raw, explain, out = sys.argv[1:7]
env = os.environ
small, large = env["SMALL_LABEL"], env["LARGE_LABEL"]
TARGET = 0.100

samples = collections.OrderedDict()   # (kind, what) -> {label: [seconds]}
for line in open(inproc):
    label, path, seconds, size, title = line.rstrip("\n").split("\t", 4)
    samples.setdefault(("in process", title), {}).setdefault(label, []).append(float(seconds))
for line in open(summary):
    label, kind, what, seconds = line.rstrip("\n").split("\t", 3)
    kind = {"cli": "CLI end to end", "cli-start": "CLI end to end", "psql": "psql"}[kind]
    if what.startswith("raw scan"): kind = "reference"
    samples.setdefault((kind, what), {}).setdefault(label, []).append(float(seconds))

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]
def ms(x): return f"{x * 1000:,.1f}"

rows, targets = [], []
for (kind, what), by in samples.items():
    s, l = by.get(small, []), by.get(large, [])
    if not s or not l: continue
    p50s, p50l, p99l = statistics.median(s), statistics.median(l), pct(l, 99)
    growth = p50l / p50s
    rows.append(f"| {kind} | {what} | {len(l)} | {ms(p50s)} / {ms(pct(s, 99))} | {ms(p50l)} / {ms(p99l)} | {growth:.2f}× |")
    if kind in ("in process", "psql"):
        met = p50l <= TARGET and growth <= 1.5
        targets.append(f"| {kind}: {what} | {ms(p50l)} ms (p99 {ms(p99l)}) | {growth:.2f}× | {'met' if met else 'NOT met'} |")

size_rows = []
for line in open(sizes):
    label, events, hourly, daily, size, generated, facts = line.rstrip("\n").split("\t")
    size_rows.append(f"| {label} | {int(events):,} | {int(hourly):,} | {int(daily):,} | {int(facts):,} | {size} | {generated} s |")

with open(out, "w") as f:
    f.write(f"""# Chargeback benchmark — {__import__('datetime').datetime.utcnow():%Y-%m-%d %H:%M} UTC

A month's chargeback (October 2026) at {small} and {large} usage events: in process (the store's query and the three exports
through \`ChargebackReport.generate\`, package-benchmark target \`bench/Benchmarks/Chargeback\`, one connection), the
\`tollgate report chargeback\` CLI end to end, the \`reporting\` views through psql, and a raw scan of \`usage_events\` for
the same month as the reference. Target (issue 5): ≤ 100 ms at {large}, flat as events grow (here: median at {large} ≤ 1.5× the
median at {small}).

Command: \`bench/run-chargeback.sh\` (SMALL={env.get('SMALL', '1000000')}, LARGE={env.get('LARGE', '10000000')},
{env['TOLLGATE_BENCH_SAMPLES']} in-process calls, {env['CLI_RUNS']} CLI runs, {env['PSQL_RUNS']} psql runs and {env['RAW_RUNS']} raw
scans per query and size); tollgate binary: \`{env['TOLLGATE_BIN_SHOWN']}\`, schema version {env['SCHEMA']}.

Data: \`bench/chargeback/generate.sql\`: 100 subscriptions (20 teams, 10 cost centers), 4 models (one unpriced), 3 backends
(one with a PTU commitment), a price change on the 15th; {small} events spread over the month in time order, then
another stream of the rest over the same month. Events land with the usage writer's own statement (insert into
\`usage_events\` and upsert the hourly rollup of exactly those rows; the product's triggers keep the daily rollup),
and after each step both rollups were checked equal to the ledger, row for row. At both sizes the report's pay-as-you-go
cost per team equals a raw scan's.

| events | \`usage_events\` rows | \`usage_hourly\` rows | \`usage_daily_rollup\` rows | report fact rows | \`usage_events\` size | generation |
|---|---|---|---|---|---|---|
""" + "\n".join(size_rows) + f"""

## Targets

| path | median at {large} | {large} / {small} | ≤ 100 ms and flat |
|---|---|---|---|
""" + "\n".join(targets) + f"""

The CLI runs include process start, connection and the schema check (\`tollgate --version\` below shows the process
start alone); they are reported, not held to the target.

## All figures (milliseconds, median / p99)

| kind | what | samples per size | {small} | {large} | growth of the median |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

## Machine

$(machine_markdown)

PostgreSQL settings of the run:

\`\`\`
$SETTINGS
\`\`\`

<details><summary>EXPLAIN (ANALYZE, BUFFERS)</summary>

\`\`\`
""" + open(explain).read().strip() + """
\`\`\`
</details>

<details><summary>package-benchmark output</summary>

\`\`\`
""" + open(raw).read().strip() + """
\`\`\`
</details>
""")
print(out)
PY
log "wrote $OUT"
