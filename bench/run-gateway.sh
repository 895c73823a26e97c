#!/usr/bin/env bash
# Gateway overhead benchmark (issue 5), on loopback, bounded in time (~5 minutes with the defaults).
#
# Three targets answer the same OpenAI chat request with the same fixed chat.completion (usage included):
#   direct   nginx returning the fixed JSON (the "fast upstream")
#   nginx    a plain nginx proxy_pass to it (the reference a gateway is judged against)
#   tollgate `tollgate serve` routing to it, metering every response into a durable PostgreSQL
# Phases: (1) peak: wrk at fixed connections for a fixed duration against each; (2) latency at half of Tollgate's
# peak rate, paced with wrk's delay() hook, against each; (3) 1,000 concurrent SSE streams (sse/sse_bench.py) direct,
# through nginx and through Tollgate, sampling resident memory. Then zero-loss: usage rows vs requests answered.
# Writes bench/results/gateway-<date>.md.
#
#   bench/run-gateway.sh                 # everything; needs .build/release/tollgate (swift build -c release --product tollgate)
#   bench/run-gateway.sh --nginx-only    # the references alone (direct, nginx proxy_pass, SSE through nginx)
#   bench/run-gateway.sh --profile       # only: Tollgate at peak load under `perf record`; writes PROFILE_OUT
#                                        # (bench/results/profile-<date>.txt): CPU by process, flat and inclusive
#                                        # reports (PERF=0: the CPU figures alone, without perf's own overhead)
#   bench/run-gateway.sh --failover      # only: the latency one failover adds: one connection, requests for a pool whose
#                                        # first member answers 429 (Retry-After: 0, so every request fails over) against
#                                        # the same requests to the single backend; writes FAILOVER_OUT
#   bench/run-gateway.sh --sched         # only: Tollgate at a fixed rate (SCHED_RATE, 11000 req/s) under `perf sched
#                                        # record`; writes SCHED_OUT (bench/results/sched-<date>.txt): the paced run's
#                                        # latency and, per process, how long its threads waited for a CPU once woken
#
# Environment: TOLLGATE_BIN, DURATION (15 s per measured run), WARMUP (3 s), CONNECTIONS (64), THREADS (2),
# ROUNDS (3: extra peak runs alternating nginx proxy_pass and Tollgate), ROUND_DURATION (10 s),
# PACE_MS (10: per-connection pause in the fixed-rate phase), SSE_STREAMS (1000), SSE_CHUNKS (40), SSE_INTERVAL_MS (250),
# NGINX_WORKERS (2), OUT (results file), POOL (1: gpt-4o-mini served by a pool of two backends instead of one).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib/common.sh"

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PACE_MS=${PACE_MS:-10}
ROUNDS=${ROUNDS:-3}
ROUND_DURATION=${ROUND_DURATION:-10}
SSE_STREAMS=${SSE_STREAMS:-1000}
SSE_CHUNKS=${SSE_CHUNKS:-40}
SSE_INTERVAL_MS=${SSE_INTERVAL_MS:-250}
NGINX_WORKERS=${NGINX_WORKERS:-2}
TOLLGATE_BIN=${TOLLGATE_BIN:-$ROOT/.build/release/tollgate}
OUT=${OUT:-$HERE/results/gateway-$(date -u +%Y-%m-%d).md}
NGINX_ONLY=0
PROFILE=0
PROFILE_OUT=${PROFILE_OUT:-$HERE/results/profile-$(date -u +%Y-%m-%d).txt}
SCHED=0
FAILOVER=0
FAILOVER_OUT=${FAILOVER_OUT:-$HERE/results/failover-$(date -u +%Y-%m-%d).md}
SCHED_RATE=${SCHED_RATE:-11000}
SCHED_SECONDS=${SCHED_SECONDS:-5}
SCHED_OUT=${SCHED_OUT:-$HERE/results/sched-$(date -u +%Y-%m-%d).txt}
for arg in "$@"; do
    case $arg in
        --nginx-only) NGINX_ONLY=1 ;;
        --profile) PROFILE=1 ;;
        --sched) SCHED=1 ;;
        --failover) FAILOVER=1 ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" 2 ;;
    esac
done

for tool in nginx wrk python3; do
    command -v $tool >/dev/null || die "$tool is not installed: apt-get update && apt-get install -y nginx wrk python3" 2
done
if [ $NGINX_ONLY = 0 ]; then
    [ -x "$TOLLGATE_BIN" ] || die "no tollgate binary at $TOLLGATE_BIN.
  Build it first:  swift build -c release --product tollgate   (or set TOLLGATE_BIN=/path/to/tollgate)
  or measure the nginx references alone:  $0 --nginx-only" 3
    # ArgumentParser prints help and exits 0 even for an unknown subcommand, so look for serve's own flags.
    "$TOLLGATE_BIN" serve --help 2>&1 | grep -q -- '--port' && "$TOLLGATE_BIN" serve --help 2>&1 | grep -q -- '--config' \
        || die "$TOLLGATE_BIN has no 'serve' subcommand with --config and --port yet ('tollgate serve --help'); build one that does, or use --nginx-only" 3
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[ "$(ulimit -n)" -ge $((SSE_STREAMS * 3 + 100)) ] || die "open-file limit $(ulimit -n) is too low for $SSE_STREAMS streams"

RUN=$(mktemp -d /tmp/tollgate-gateway.XXXXXX)
chmod 755 "$RUN"
mkdir -p "$RUN/nginx-tmp"
MEASUREMENTS=$RUN/measurements.jsonl
: >"$MEASUREMENTS"
UPSTREAM_PORT=$(free_port); PROXY_PORT=$(free_port); SSE_PORT=$(free_port); SSE_PROXY_PORT=$(free_port)
TOLLGATE_PORT=$(free_port); PG_PORT=$(free_port)
SSE_PID=""; TOLLGATE_PID=""; SAMPLER_PID=""

cleanup() {
    set +e
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
    stop_tollgate
    [ -f "$RUN/nginx.pid" ] && kill -QUIT "$(cat "$RUN/nginx.pid")" 2>/dev/null
    [ -n "$SSE_PID" ] && kill "$SSE_PID" 2>/dev/null
    pg_stop "$RUN/pg"
    sleep 0.3
    rm -rf "$RUN"
}
trap cleanup EXIT

record() { echo "$1" >>"$MEASUREMENTS"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_workers_rss_kb() {
    local total=0 pid
    for pid in $(pgrep -P "$(cat "$RUN/nginx.pid")"); do total=$((total + $(rss_kb "$pid"))); done
    echo $total
}

# sample_rss_start PIDFUNC FILE: writes the largest RSS seen (kB) to FILE every 0.25 s until stopped.
sample_rss_start() {
    local what=$1 file=$2
    ( peak=0; while true; do v=$($what); [ "${v:-0}" -gt "$peak" ] && peak=$v && echo $peak >"$file"; sleep 0.25; done ) &
    SAMPLER_PID=$!
}
sample_rss_stop() { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""; }

# post URL [KEY]: one chat request; prints "status usage_total_tokens x-request-id".
post() {
    python3 - "$1" "${2:-}" <<'PY'
import json, sys, urllib.request, urllib.error
url, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, method="POST", data=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
                             headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.load(r)
        print(r.status, body.get("usage", {}).get("total_tokens"), r.headers.get("x-request-id"))
except urllib.error.HTTPError as e:
    print(e.code, None, e.read()[:200].decode(errors="replace").replace(" ", "_"))
except Exception as e:
    print(0, None, type(e).__name__)
PY
}

# measure PHASE TARGET URL CONNS DURATION PACE_MS KEY: one wrk run; appends its RESULT as a JSON line.
measure() {
    local phase=$1 target=$2 url=$3 conns=$4 duration=$5 pace=$6 key=$7 threads=$THREADS line
    [ "$conns" -lt "$threads" ] && threads=$conns
    line=$(WRK_DELAY_MS=$pace TOLLGATE_KEY=$key timeout $((duration + 30)) \
        wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 5s --latency -s "$HERE/wrk/chat.lua" "$url" | grep '^RESULT ' || true)
    [ -n "$line" ] || die "wrk produced no result for $target ($phase)"
    python3 - "$phase" "$target" "$conns" "$pace" "$line" >>"$MEASUREMENTS" <<'PY'
import json, sys
phase, target, conns, pace, line = sys.argv[1:6]
fields = dict(kv.split("=", 1) for kv in line.split()[1:])
record = {"kind": "wrk", "phase": phase, "target": target, "connections": int(conns), "pace_ms": int(pace) if pace else None}
record.update({k: float(v) if "." in v else int(v) for k, v in fields.items()})
print(json.dumps(record))
PY
    log "$phase $target: $(tail -1 "$MEASUREMENTS" | python3 -c 'import json, sys
r = json.load(sys.stdin)
errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d, socket errors %d" % (r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["non2xx"], errors))')"
}

start_tollgate() {
    "$TOLLGATE_BIN" serve --config "$RUN/tollgate.yaml" --port "$TOLLGATE_PORT" --data-dir "$RUN/tollgate-data" >>"$RUN/tollgate.log" 2>&1 &
    TOLLGATE_PID=$!
    local deadline=$((SECONDS + 60))
    until [ "$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$TOLLGATE_PORT/healthz', timeout=1).status)" 2>/dev/null)" = 200 ]; do
        kill -0 "$TOLLGATE_PID" 2>/dev/null || die "tollgate serve exited; its log:
$(tail -30 "$RUN/tollgate.log")"
        [ $SECONDS -lt $deadline ] || die "tollgate did not answer /healthz within 60 s; its log:
$(tail -30 "$RUN/tollgate.log")"
        sleep 0.1
    done
}

# Graceful stop (SIGTERM), so the usage writer flushes what it holds.
stop_tollgate() {
    [ -n "$TOLLGATE_PID" ] || return 0
    kill -TERM "$TOLLGATE_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$TOLLGATE_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$TOLLGATE_PID" 2>/dev/null; then
        log "tollgate did not stop within 15 s of SIGTERM; killing it"
        kill -KILL "$TOLLGATE_PID" 2>/dev/null || true
    fi
    wait "$TOLLGATE_PID" 2>/dev/null || true
    TOLLGATE_PID=""
}

# ------------------------------------------------------------------------------------------------------ start up
log "starting nginx (fast upstream :$UPSTREAM_PORT, proxy_pass :$PROXY_PORT, SSE proxy :$SSE_PROXY_PORT) and the SSE upstream (:$SSE_PORT)"
JSON=$(tr -d '\n' <"$HERE/nginx/chat-completion.json")
case $JSON in *"'"*) die "nginx/chat-completion.json must not contain a single quote" ;; esac
sed -e "s|@RUN@|$RUN|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
    -e "s|@SSE_PORT@|$SSE_PORT|g" -e "s|@SSE_PROXY_PORT@|$SSE_PROXY_PORT|g" -e "s|@WORKERS@|$NGINX_WORKERS|g" \
    "$HERE/nginx/bench.conf" | python3 -c "import sys; sys.stdout.write(sys.stdin.read().replace('@CHAT_COMPLETION_JSON@', sys.argv[1]))" "$JSON" \
    >"$RUN/nginx.conf"
nginx -t -q -p "$RUN" -e "$RUN/nginx-error.log" -c "$RUN/nginx.conf" || die "nginx rejected the configuration"
nginx -p "$RUN" -e "$RUN/nginx-error.log" -c "$RUN/nginx.conf"
python3 "$HERE/sse/sse_bench.py" upstream --port "$SSE_PORT" --chunks "$SSE_CHUNKS" --interval-ms "$SSE_INTERVAL_MS" 2>>"$RUN/sse-upstream.log" &
SSE_PID=$!
wait_port "$UPSTREAM_PORT" 10 && wait_port "$PROXY_PORT" 10 && wait_port "$SSE_PORT" 10 || die "nginx or the SSE upstream did not start"

DIRECT_URL=http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions
PROXY_URL=http://127.0.0.1:$PROXY_PORT/v1/chat/completions
TOLLGATE_URL=http://127.0.0.1:$TOLLGATE_PORT/v1/chat/completions
for url in "$DIRECT_URL" "$PROXY_URL"; do
    read -r status tokens _ < <(post "$url")
    [ "$status" = 200 ] && [ "$tokens" = 32 ] || die "sanity request to $url answered $status with total_tokens $tokens"
done

KEY=""
if [ $NGINX_ONLY = 0 ]; then
    log "starting a durable PostgreSQL on :$PG_PORT and tollgate on :$TOLLGATE_PORT"
    pg_start "$RUN/pg" "$PG_PORT"
    pg_psql "$PG_PORT" -d postgres -c "CREATE DATABASE tollgate"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/tollgate?sslmode=disable"
    export TOLLGATE_BENCH_UPSTREAM_KEY=sk-bench-not-a-real-key
    cat >"$RUN/tollgate.yaml" <<YAML
# Written by bench/run-gateway.sh: the fast upstream (nginx) and the streaming upstream (sse_bench.py).
backends:
  - name: fast-upstream
    kind: openai
    base_url: http://127.0.0.1:$UPSTREAM_PORT/v1
    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY
    models: [gpt-4o-mini]
$(if [ "${POOL:-0}" = 1 ]; then printf '%s\n' \
"  - name: fast-upstream-b   # POOL=1: gpt-4o-mini is a pool of two equal members (same nginx behind both)" \
"    kind: openai" \
"    base_url: http://127.0.0.1:$UPSTREAM_PORT/v1" \
"    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY" \
"    models: [gpt-4o-mini]"; fi)
  - name: throttled-upstream   # --failover: answers 429 with Retry-After: 0, first in the gpt-4o-mini-failover pool
    kind: openai
    base_url: http://127.0.0.1:$UPSTREAM_PORT/throttled/v1
    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY
    deployments:
      - { name: gpt-4o-mini-failover, model: gpt-4o-mini, priority: 1 }
  - name: fast-upstream-overflow   # also the second of the two equal members of gpt-4o-mini-pool (--failover)
    kind: openai
    base_url: http://127.0.0.1:$UPSTREAM_PORT/v1
    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY
    deployments:
      - { name: gpt-4o-mini-failover, model: gpt-4o-mini, priority: 2 }
      - { name: gpt-4o-mini-pool, model: gpt-4o-mini }
  - name: fast-upstream-pool
    kind: openai
    base_url: http://127.0.0.1:$UPSTREAM_PORT/v1
    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY
    deployments:
      - { name: gpt-4o-mini-pool, model: gpt-4o-mini }
  - name: sse-upstream
    kind: openai
    base_url: http://127.0.0.1:$SSE_PORT/v1
    credential_env: TOLLGATE_BENCH_UPSTREAM_KEY
    models: [gpt-4o-mini-stream]
products:
  - name: bench
subscriptions:
  - id: bench
    display_name: Benchmark
    team: bench
    cost_center: cc-bench
    product: bench
YAML
    "$TOLLGATE_BIN" migrate >>"$RUN/tollgate.log" 2>&1 || die "tollgate migrate failed: $(tail -20 "$RUN/tollgate.log")"
    "$TOLLGATE_BIN" apply -f "$RUN/tollgate.yaml" >>"$RUN/tollgate.log" 2>&1 || die "tollgate apply failed: $(tail -20 "$RUN/tollgate.log")"
    KEY=$("$TOLLGATE_BIN" keys create --subscription bench 2>>"$RUN/tollgate.log" | grep -o 'tgk_[0-9A-Za-z]\{40\}' | head -1 || true)
    [ -n "$KEY" ] || die "tollgate keys create printed no key: $(tail -20 "$RUN/tollgate.log")"
    start_tollgate
    read -r status tokens request_id < <(post "$TOLLGATE_URL" "$KEY")
    [ "$status" = 200 ] && [ "$tokens" = 32 ] || die "sanity request through tollgate answered $status with total_tokens $tokens ($request_id)"
    read -r status _ _ < <(post "$TOLLGATE_URL" "tgk_not_a_key")
    [ "$status" = 401 ] || die "tollgate accepted an unknown key (status $status)"
    record "{\"kind\": \"memory\", \"what\": \"tollgate idle after start\", \"rss_kb\": $(rss_kb "$TOLLGATE_PID")}"
fi

# ---------------------------------------------------------------------------------- failover mode (--failover)
if [ $FAILOVER = 1 ]; then
    [ $NGINX_ONLY = 0 ] || die "--failover needs Tollgate (not --nginx-only)"
    for round in 1 2 3; do
        for model in gpt-4o-mini gpt-4o-mini-failover; do
            WRK_MODEL=$model measure "failover-$round" "$model" "$TOLLGATE_URL" 1 10 "" "$KEY"
        done
    done
    # Peak throughput of a two-member pool against one backend, alternating in the same process.
    for round in 1 2 3 4; do
        for model in gpt-4o-mini gpt-4o-mini-pool; do
            WRK_MODEL=$model measure "pool-$round" "$model" "$TOLLGATE_URL" "$CONNECTIONS" "$ROUND_DURATION" "" "$KEY"
        done
    done
    mkdir -p "$(dirname "$FAILOVER_OUT")"
    python3 - "$MEASUREMENTS" "$FAILOVER_OUT" "$(machine_markdown)" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
everything = [r for r in runs if r.get("kind") == "wrk"]
runs = [r for r in everything if r["phase"].startswith("failover-")]
pool = [r for r in everything if r["phase"].startswith("pool-")]
def med(target, key): return statistics.median(r[key] for r in runs if r["target"] == target) / 1000
lines = ["# One failover's added latency", "", sys.argv[3], "",
         "One connection, 10 s a run, three rounds alternating. `gpt-4o-mini` goes to one backend; `gpt-4o-mini-failover` is a",
         "pool whose first member answers 429 (`Retry-After: 0`), so every request is sent twice: once to it, then to the second member.", "",
         "| target | req/s | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|"]
for target in ("gpt-4o-mini", "gpt-4o-mini-failover"):
    rps = statistics.median(r["rps"] for r in runs if r["target"] == target)
    lines.append(f"| {target} | {rps:,.0f} | {med(target, 'p50_us'):.3f} | {med(target, 'p90_us'):.3f} | {med(target, 'p99_us'):.3f} |")
lines += ["", f"Added by one failover (medians): p50 **{med('gpt-4o-mini-failover', 'p50_us') - med('gpt-4o-mini', 'p50_us'):.3f} ms**, "
          f"p99 {med('gpt-4o-mini-failover', 'p99_us') - med('gpt-4o-mini', 'p99_us'):.3f} ms.", ""]
single = [r["rps"] for r in pool if r["target"] == "gpt-4o-mini"]
pooled = [r["rps"] for r in pool if r["target"] == "gpt-4o-mini-pool"]
ratios = [p / s for s, p in zip(single, pooled)]
lines += ["## A pool of two against one backend", "",
          "Peak load, alternating rounds in the same Tollgate process: `gpt-4o-mini` (one backend) and `gpt-4o-mini-pool` (two",
          "equal members, the same nginx behind both).", "",
          "| round | one backend req/s | pool of two req/s | ratio |", "|---|---|---|---|"]
lines += [f"| {i + 1} | {s:,.0f} | {p:,.0f} | {p / s:.0%} |" for i, (s, p) in enumerate(zip(single, pooled))]
lines += ["", f"Median ratio: **{statistics.median(ratios):.0%}** (target ≥ 95 %).", ""]
open(sys.argv[2], "w").write("\n".join(lines))
print("\n".join(lines))
PY
    log "failover figures written to $FAILOVER_OUT"
    exit 0
fi

# ------------------------------------------------------------------------------------ profile mode (--profile)
# CPU ticks (user + system) summed per command name over every process: "COMMAND TICKS" lines.
cpu_ticks_by_command() {
    python3 - <<'PY'
import glob, collections
total = collections.Counter()
for path in glob.glob("/proc/[0-9]*/stat"):
    try: text = open(path).read()
    except OSError: continue
    command = text[text.index("(") + 1:text.rindex(")")].split(":")[0].split()[0]
    fields = text[text.rindex(")") + 2:].split()
    total[command] += int(fields[11]) + int(fields[12])
for command, ticks in total.items(): print(command.replace(" ", "_"), ticks)
PY
}
if [ $PROFILE = 1 ]; then
    [ $NGINX_ONLY = 0 ] || die "--profile needs Tollgate (not --nginx-only)"
    command -v perf >/dev/null || die "perf is not installed: apt-get install -y linux-perf" 2
    log "profile: warm-up ${WARMUP}s, then perf record of tollgate (pid $TOLLGATE_PID) for ${DURATION}s at peak load"
    TOLLGATE_KEY=$KEY wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$HERE/wrk/chat.lua" "$TOLLGATE_URL" >/dev/null 2>&1 || true
    TOLLGATE_KEY=$KEY wrk -t"$THREADS" -c"$CONNECTIONS" -d"$((DURATION + 2))s" --latency -s "$HERE/wrk/chat.lua" "$TOLLGATE_URL" >"$RUN/profile-wrk.txt" 2>&1 &
    WRK_PID=$!
    sleep 1
    cpu_ticks_by_command >"$RUN/cpu-before"
    if [ "${PERF:-1}" = 1 ]; then
        perf record -F 1999 -g -o "$RUN/perf.data" -p "$TOLLGATE_PID" -- sleep "$DURATION" >"$RUN/perf-record.log" 2>&1 \
            || die "perf record failed: $(tail -5 "$RUN/perf-record.log")"
    else
        sleep "$DURATION"
    fi
    cpu_ticks_by_command >"$RUN/cpu-after"
    wait $WRK_PID || true
    mkdir -p "$(dirname "$PROFILE_OUT")"
    {
        echo "# perf profile of tollgate at peak load ($CONNECTIONS connections, ${DURATION}s), $(date -u '+%Y-%m-%d %H:%M') UTC"
        echo "# wrk during the recording:"; grep -E 'Requests/sec|RESULT' "$RUN/profile-wrk.txt" | sed 's/^/#   /'
        echo "# CPU used during the ${DURATION}s recording, by command (seconds; $(nproc) CPUs = $((DURATION * $(nproc))) s available):"
        python3 - "$RUN/cpu-before" "$RUN/cpu-after" "$(getconf CLK_TCK)" <<'PY'
import sys
before, after = ({l.split()[0]: int(l.split()[1]) for l in open(f)} for f in sys.argv[1:3])
hz = int(sys.argv[3])
for command in sorted(after, key=lambda c: after[c] - before.get(c, 0), reverse=True):
    used = (after[command] - before.get(command, 0)) / hz
    if used >= 0.05: print(f"#   {command:<24} {used:6.2f}")
PY
        [ "${PERF:-1}" = 1 ] || exit 0
        echo; echo "## flat (self time, symbols >= 0.3 %)"
        perf report -i "$RUN/perf.data" --no-children --percent-limit 0.3 --stdio -g none 2>/dev/null | grep -v "^$" | sed "s/[[:space:]]*$//"
        echo; echo "## by shared object (self time)"
        perf report -i "$RUN/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$'
        echo; echo "## inclusive (children, >= 2 %)"
        perf report -i "$RUN/perf.data" --children --percent-limit 2 --stdio -g none 2>/dev/null | grep -v "^$" | sed "s/[[:space:]]*$//"
    } >"$PROFILE_OUT"
    [ -z "${KEEP_PERF_DATA:-}" ] || cp "$RUN/perf.data" "$KEEP_PERF_DATA"
    log "profile written to $PROFILE_OUT"
    exit 0
fi

# -------------------------------------------------------------------------------------- sched mode (--sched)
# Why the tail grows at a fixed rate well below the peak: every thread that has work waits for one of the two CPUs.
# `perf sched timehist` gives, for each time a thread ran, its scheduling delay (woken → on a CPU).
if [ $SCHED = 1 ]; then
    [ $NGINX_ONLY = 0 ] || die "--sched needs Tollgate (not --nginx-only)"
    command -v perf >/dev/null || die "perf is not installed: apt-get install -y linux-perf" 2
    conns=$(( (SCHED_RATE * PACE_MS + 999) / 1000 ))
    log "sched: $conns connections pausing ${PACE_MS} ms (≈ $SCHED_RATE req/s) against Tollgate; perf sched record for ${SCHED_SECONDS}s"
    TOLLGATE_KEY=$KEY wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$HERE/wrk/chat.lua" "$TOLLGATE_URL" >/dev/null 2>&1 || true
    WRK_DELAY_MS=$PACE_MS TOLLGATE_KEY=$KEY wrk -t"$THREADS" -c"$conns" -d"$((SCHED_SECONDS + 3))s" --latency -s "$HERE/wrk/chat.lua" "$TOLLGATE_URL" >"$RUN/sched-wrk.txt" 2>&1 &
    WRK_PID=$!
    sleep 1.5
    perf sched record -o "$RUN/sched.data" -- sleep "$SCHED_SECONDS" >"$RUN/perf-sched.log" 2>&1 || die "perf sched record failed: $(tail -5 "$RUN/perf-sched.log")"
    wait $WRK_PID || true
    perf sched timehist -i "$RUN/sched.data" >"$RUN/timehist.txt" 2>/dev/null || die "perf sched timehist failed"
    mkdir -p "$(dirname "$SCHED_OUT")"
    {
        echo "# Scheduling delays at a fixed rate, $(date -u '+%Y-%m-%d %H:%M') UTC: tollgate (metering on) at ≈ $SCHED_RATE req/s"
        echo "# ($conns wrk connections, each pausing ${PACE_MS} ms between requests), perf sched record -a for ${SCHED_SECONDS}s"
        echo "# wrk during the recording (latency excludes the pauses):"; grep -E 'Requests/sec|RESULT' "$RUN/sched-wrk.txt" | sed 's/^/#   /'
        echo "#"
        echo "# Per process: how many times its threads were put on a CPU, CPU time, and the scheduling delay of each (from being"
        echo "# woken to running), in ms. A request passes through wrk, Tollgate (twice: request in, reply back) and nginx, so"
        echo "# delays on any of them add up in its latency."
        python3 - "$RUN/timehist.txt" "$TOLLGATE_PID" <<'PY'
import re, sys, collections
# "name[tid/pid]" for a thread of a multi-threaded process, "name[pid]" otherwise.
line_re = re.compile(r"^\s*[\d.]+\s+\[\d+\]\s+(.+?)\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")
tollgate = sys.argv[2]
delays, run = collections.defaultdict(list), collections.Counter()
for line in open(sys.argv[1]):
    m = line_re.match(line)
    if not m: continue
    name, tid, pid, wait, delay, ran = m.groups()
    pid = pid or tid
    if name == "<idle>": continue
    group = "tollgate" if pid == tollgate else name.split("-")[0].split(":")[0] or name
    delays[group].append(float(delay)); run[group] += float(ran)
def pct(values, q):
    values = sorted(values); return values[min(len(values) - 1, int(q * len(values)))]
print(f"{'process':<16} {'runs':>8} {'CPU ms':>9} {'delay p50':>10} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8}")
for group in sorted(delays, key=lambda g: run[g], reverse=True)[:8]:
    d = delays[group]
    print(f"{group:<16} {len(d):>8} {run[group]:>9.0f} {pct(d, .5):>10.3f} {pct(d, .9):>8.3f} {pct(d, .99):>8.3f} {pct(d, .999):>8.3f} {max(d):>8.3f}")
PY
    } >"$SCHED_OUT"
    log "scheduling delays written to $SCHED_OUT"
    cat "$SCHED_OUT"
    exit 0
fi

# ------------------------------------------------------------------------------------------- phase 1: peak rate
TARGETS="direct:$DIRECT_URL nginx:$PROXY_URL"
[ $NGINX_ONLY = 0 ] && TARGETS="$TARGETS tollgate:$TOLLGATE_URL"
key_for() { if [ "$1" = tollgate ]; then echo "$KEY"; fi; }
for entry in $TARGETS; do
    target=${entry%%:*}; url=${entry#*:}
    log "peak: $target, warm-up ${WARMUP}s"
    TOLLGATE_KEY=$(key_for "$target") wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$HERE/wrk/chat.lua" "$url" >"$RUN/warmup-$target.txt" 2>&1 || true
    if [ "$target" = tollgate ]; then
        # Non-2xx answers are not metered as usage of the upstream; count only what wrk saw answered.
        python3 -c "import sys; f=dict(kv.split('=',1) for kv in open(sys.argv[1]).read().split('RESULT ',1)[1].split()); print(int(f['requests'])-int(f['non2xx']))" \
            "$RUN/warmup-$target.txt" >"$RUN/tollgate-warmup-requests" 2>/dev/null || echo 0 >"$RUN/tollgate-warmup-requests"
        sample_rss_start "rss_kb $TOLLGATE_PID" "$RUN/rss-peak-http"
    fi
    measure peak "$target" "$url" "$CONNECTIONS" "$DURATION" "" "$(key_for "$target")"
    if [ "$target" = tollgate ]; then
        sample_rss_stop
        record "{\"kind\": \"memory\", \"what\": \"tollgate peak during the peak-rate run ($CONNECTIONS connections)\", \"rss_kb\": $(cat "$RUN/rss-peak-http" 2>/dev/null || echo 0)}"
    fi
done

# ------------------------------------------------------ phase 1b: alternating rounds, nginx proxy_pass vs Tollgate
# A single reference run moves by ±15 % with whatever else the two cores are doing; rounds that alternate the two,
# back to back, give a ratio per round, and the target is judged on the median of all of them (the peak run included).
if [ $NGINX_ONLY = 0 ]; then
    for round in $(seq 1 "$ROUNDS"); do
        measure "round-$round" nginx "$PROXY_URL" "$CONNECTIONS" "$ROUND_DURATION" "" ""
        measure "round-$round" tollgate "$TOLLGATE_URL" "$CONNECTIONS" "$ROUND_DURATION" "" "$KEY"
    done
fi

# ------------------------------------------------------------------------- phase 2: latency at a fixed rate
RATE_FROM=tollgate
[ $NGINX_ONLY = 1 ] && RATE_FROM=nginx
PEAK=$(python3 -c "import json,sys; print(int(next(r['rps'] for r in map(json.loads, open(sys.argv[1])) if r.get('phase')=='peak' and r['target']==sys.argv[2])))" "$MEASUREMENTS" "$RATE_FROM")
RATE=$((PEAK / 2))
PACED_CONNECTIONS=$(( (RATE * PACE_MS + 999) / 1000 ))
[ "$PACED_CONNECTIONS" -ge 1 ] || PACED_CONNECTIONS=1
log "fixed rate: half of $RATE_FROM's peak = $RATE req/s -> $PACED_CONNECTIONS connections pausing ${PACE_MS} ms between requests"
for entry in $TARGETS; do
    target=${entry%%:*}; url=${entry#*:}
    measure half-rate "$target" "$url" "$PACED_CONNECTIONS" "$DURATION" "$PACE_MS" "$(key_for "$target")"
done

# ------------------------------------------------------------------------------------ phase 3: SSE streams
sse_run() {
    local target=$1 url=$2 key=${3:-} result
    result=$(timeout $(( SSE_CHUNKS * SSE_INTERVAL_MS / 1000 + 120 )) python3 "$HERE/sse/sse_bench.py" client --url "$url" --key "$key" \
        --model gpt-4o-mini-stream --streams "$SSE_STREAMS" --ramp-seconds 3 --timeout 60 || true)
    [ -n "$result" ] || die "the SSE client printed nothing for $target"
    echo "$result" | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(kind='sse', target=sys.argv[1], rss_peak_kb=int(sys.argv[2] or 0)); print(json.dumps(r))" \
        "$target" "$(cat "$RUN/rss-peak-sse-$target" 2>/dev/null || echo 0)" >>"$MEASUREMENTS"
    log "sse $target: $result"
}
log "SSE: $SSE_STREAMS concurrent streams of $SSE_CHUNKS chunks every ${SSE_INTERVAL_MS} ms"
sample_rss_start "rss_kb $SSE_PID" "$RUN/rss-peak-sse-direct"
sse_run direct "http://127.0.0.1:$SSE_PORT/v1/chat/completions"
sample_rss_stop
sample_rss_start nginx_workers_rss_kb "$RUN/rss-peak-sse-nginx"
sse_run nginx "http://127.0.0.1:$SSE_PROXY_PORT/v1/chat/completions"
sample_rss_stop
if [ $NGINX_ONLY = 0 ]; then
    # A fresh process, so its peak resident memory belongs to the streaming run alone.
    stop_tollgate
    start_tollgate
    record "{\"kind\": \"memory\", \"what\": \"tollgate idle after restart\", \"rss_kb\": $(rss_kb "$TOLLGATE_PID")}"
    sample_rss_start "rss_kb $TOLLGATE_PID" "$RUN/rss-peak-sse-tollgate"
    sse_run tollgate "$TOLLGATE_URL" "$KEY"
    sample_rss_stop
    record "{\"kind\": \"memory\", \"what\": \"tollgate VmHWM after the SSE run\", \"rss_kb\": $(hwm_kb "$TOLLGATE_PID")}"
    stop_tollgate

    # ------------------------------------------------------------------------------------------ zero loss
    read -r fast_rows fast_prompt fast_completion fast_sources sse_rows sse_completion sse_sources sse_reported < <(pg_psql "$PG_PORT" -d tollgate -At -F ' ' -c "
        SELECT count(*) FILTER (WHERE backend LIKE 'fast-upstream%'),
               coalesce(sum(prompt_tokens) FILTER (WHERE backend LIKE 'fast-upstream%'), 0),
               coalesce(sum(completion_tokens) FILTER (WHERE backend LIKE 'fast-upstream%'), 0),
               coalesce(string_agg(DISTINCT usage_source, ',') FILTER (WHERE backend LIKE 'fast-upstream%'), '-'),
               count(*) FILTER (WHERE backend = 'sse-upstream'),
               coalesce(sum(completion_tokens) FILTER (WHERE backend = 'sse-upstream'), 0),
               coalesce(string_agg(DISTINCT usage_source, ',') FILTER (WHERE backend = 'sse-upstream'), '-'),
               count(*) FILTER (WHERE backend = 'sse-upstream' AND usage_source = 'reported')
        FROM usage_events")
    answered=$(python3 -c "import json,sys; print(sum(r['requests'] - r['non2xx'] for r in map(json.loads, open(sys.argv[1])) if r.get('kind')=='wrk' and r['target']=='tollgate'))" "$MEASUREMENTS")
    warm=$(cat "$RUN/tollgate-warmup-requests" 2>/dev/null || echo 0)
    record "{\"kind\": \"loss\", \"answered_measured\": $answered, \"answered_warmup\": ${warm:-0}, \"sanity_requests\": 2, \"fast_rows\": $fast_rows, \"fast_prompt\": $fast_prompt, \"fast_completion\": $fast_completion, \"fast_sources\": \"$fast_sources\", \"sse_rows\": $sse_rows, \"sse_completion\": $sse_completion, \"sse_sources\": \"$sse_sources\", \"sse_reported\": $sse_reported, \"connections\": $CONNECTIONS, \"runs\": 2}"
fi

# ------------------------------------------------------------------------------------------------ results
mkdir -p "$(dirname "$OUT")"
MACHINE=$(machine_markdown)
COMMAND="bench/run-gateway.sh"
[ $NGINX_ONLY = 1 ] && COMMAND="$COMMAND --nginx-only"
python3 - "$MEASUREMENTS" "$OUT" "$NGINX_ONLY" <<PY
import json, sys
measurements, out, nginx_only = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
records = [json.loads(l) for l in open(measurements) if l.strip()]
wrk = {(r["phase"], r["target"]): r for r in records if r["kind"] == "wrk"}
sse = {r["target"]: r for r in records if r["kind"] == "sse"}
memory = [r for r in records if r["kind"] == "memory"]
loss = next((r for r in records if r["kind"] == "loss"), None)
ms = lambda us: f"{us / 1000:.2f}"
names = {"direct": "fast upstream, direct (nginx return)", "nginx": "nginx proxy_pass", "tollgate": "Tollgate (metering on)"}
order = [t for t in ("direct", "nginx", "tollgate") if ("peak", t) in wrk]
lines = []
w = lines.append
w("# Gateway overhead benchmark — $(date -u '+%Y-%m-%d %H:%M') UTC")
w("")
if nginx_only:
    w("**nginx-only run** (\`--nginx-only\`): the Tollgate rows are missing because no \`tollgate serve\` binary was used; the fixed-rate phase ran at half of the nginx proxy's peak instead.")
    w("")
w("Same request (\`POST /v1/chat/completions\`, 150-byte JSON body), same fixed chat.completion answer with a usage object (nginx \`return 200\`).")
w("Loopback only; wrk, nginx, the SSE upstream, Tollgate and PostgreSQL share the machine's $(nproc) logical CPUs, so each figure includes the load generator's own cost.")
w("")
w("## Targets (issue 5)")
w("")
w("| what | target | measured | |")
w("|---|---|---|---|")
rounds = sorted((p for (p, t) in wrk if p.startswith("round-") and t == "tollgate" and (p, "nginx") in wrk), key=lambda p: int(p.split("-")[1]))
ratio_runs = [p for p in ["peak"] + rounds if (p, "tollgate") in wrk and (p, "nginx") in wrk]
ratios = [wrk[(p, "tollgate")]["rps"] / wrk[(p, "nginx")]["rps"] for p in ratio_runs]
if ("peak", "tollgate") in wrk:
    ratio = sorted(ratios)[len(ratios) // 2] if len(ratios) % 2 else sum(sorted(ratios)[len(ratios) // 2 - 1:len(ratios) // 2 + 1]) / 2
    each = ", ".join(f"{r:.0%}" for r in ratios)
    w(f"| Tollgate req/s vs nginx proxy_pass, {wrk[('peak', 'nginx')]['connections']} connections | ≥ 50 % | {ratio:.0%} (median of {len(ratios)} paired runs: {each}) | {'met' if ratio >= 0.5 else 'NOT met'} |")
    added = (wrk[("half-rate", "tollgate")]["p99_us"] - wrk[("half-rate", "direct")]["p99_us"]) / 1000
    w(f"| p99 added by Tollgate at half its peak rate (vs direct) | < 1 ms | {added:.2f} ms | {'met' if added < 1 else 'NOT met'} |")
else:
    w("| Tollgate req/s vs nginx proxy_pass | ≥ 50 % | not measured (no tollgate binary) | |")
    w("| p99 added by Tollgate at half its peak rate | < 1 ms | not measured | |")
if "tollgate" in sse:
    s = sse["tollgate"]
    mb = s["rss_peak_kb"] / 1024
    w(f"| Tollgate resident memory, {s['streams']} concurrent SSE streams | < 200 MB | {mb:.0f} MB peak ({s['completed']}/{s['streams']} streams completed, {s['max_concurrent']} open at once) | {'met' if mb < 200 and s['completed'] == s['streams'] else 'NOT met'} |")
else:
    w("| Tollgate resident memory, 1,000 concurrent SSE streams | < 200 MB | not measured | |")
if loss:
    expected_min = loss["answered_measured"] + loss["answered_warmup"] + loss["sanity_requests"]
    extra = loss["fast_rows"] - expected_min
    # At most one request per connection can be in flight when a wrk run (warm-up included) stops.
    in_flight_max = sum(r["connections"] for r in records if r["kind"] == "wrk" and r["target"] == "tollgate") + loss["connections"] + 2
    ok = 0 <= extra <= in_flight_max and loss["fast_prompt"] == 19 * loss["fast_rows"] and loss["fast_completion"] == 13 * loss["fast_rows"]
    w(f"| zero loss: usage rows vs 2xx answers (wrk-counted) | every answered request has a row | {loss['fast_rows']:,} rows for {expected_min:,} answers counted by wrk (+{extra} in flight when wrk stopped); tokens 19/13 on every row | {'met' if ok else 'NOT met'} |")
    if "tollgate" in sse:
        s = sse["tollgate"]
        # Every stream gets a row; a failed one is marked estimated/missing, never a silent zero.
        ok = (loss["sse_rows"] == s["streams"] and loss["sse_reported"] == s["completed"] and loss["sse_completion"] == s["completed"] * $SSE_CHUNKS
              and s["usage_chunks_seen"] == 0 and s.get("usage_null_fields_seen", 0) == 0)
        w(f"| streamed usage exact, injected usage hidden | a row per stream; 'reported' with {$SSE_CHUNKS} completion tokens for each completed stream; no usage chunk or \`usage: null\` shown to the client | {loss['sse_rows']} rows ({loss['sse_reported']} reported, sources {loss['sse_sources']}) for {s['streams']} streams of which {s['completed']} completed; {loss['sse_completion']} completion tokens; {s['usage_chunks_seen']} usage chunks / {s.get('usage_null_fields_seen', 0)} nulls seen | {'met' if ok else 'NOT met'} |")
w("")
w(f"## Peak: {wrk[('peak', order[0])]['connections']} connections, $THREADS wrk threads, ${DURATION} s (after a ${WARMUP} s warm-up)")
w("")
w("| target | req/s | vs nginx proxy_pass | vs direct | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors |")
w("|---|---|---|---|---|---|---|---|---|---|")
for t in order:
    r = wrk[("peak", t)]
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    w(f"| {names[t]} | {r['rps']:,.0f} | {r['rps'] / wrk[('peak', 'nginx')]['rps']:.0%} | {r['rps'] / wrk[('peak', 'direct')]['rps']:.0%} | {ms(r['p50_us'])} | {ms(r['p90_us'])} | {ms(r['p99_us'])} | {ms(r['max_us'])} | {r['non2xx']} | {errors} |")
if rounds:
    w("")
    w(f"## Alternating rounds: nginx proxy_pass, then Tollgate, back to back, ${ROUND_DURATION} s each, {len(rounds)} rounds after the peak runs")
    w("")
    w("| run | nginx proxy_pass req/s | Tollgate req/s | ratio | Tollgate p99 ms |")
    w("|---|---|---|---|---|")
    for p, r in zip(ratio_runs, ratios):
        w(f"| {p} | {wrk[(p, 'nginx')]['rps']:,.0f} | {wrk[(p, 'tollgate')]['rps']:,.0f} | {r:.0%} | {ms(wrk[(p, 'tollgate')]['p99_us'])} |")
half = [t for t in order if ("half-rate", t) in wrk]
if half:
    first = wrk[("half-rate", half[0])]
    w("")
    w(f"## Latency at a fixed rate: {first['connections']} connections, each pausing {first['pace_ms']} ms between requests (aimed at half of {'the nginx proxy' if nginx_only else 'Tollgate'}'s peak), ${DURATION} s")
    w("")
    w("wrk has no open-loop mode and wrk2 is not packaged in Debian; wrk's \`delay()\` hook paces each connection instead, so the offered rate is")
    w("connections × 1000 / (pause + latency) and the latency histogram excludes the pauses. The achieved rate is in the table.")
    w("")
    w("| target | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 added vs direct | non-2xx |")
    w("|---|---|---|---|---|---|---|---|---|")
    for t in half:
        r = wrk[("half-rate", t)]
        added = (r["p99_us"] - wrk[("half-rate", "direct")]["p99_us"]) / 1000
        w(f"| {names[t]} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p90_us'])} | {ms(r['p99_us'])} | {ms(r['p999_us'])} | {ms(r['max_us'])} | {'–' if t == 'direct' else f'{added:+.2f} ms'} | {r['non2xx']} |")
if sse:
    w("")
    w(f"## Streaming: {next(iter(sse.values()))['streams']} concurrent SSE streams, {$SSE_CHUNKS} chunks {$SSE_INTERVAL_MS} ms apart (sse/sse_bench.py)")
    w("")
    w("| through | completed | max open at once | first event p50 / p99 ms | stream duration p50 s | events per stream | usage chunks / \`usage: null\` fields seen by client | resident memory peak |")
    w("|---|---|---|---|---|---|---|---|")
    labels = {"direct": "SSE upstream, direct (Python asyncio; its own RSS)", "nginx": "nginx proxy_pass, unbuffered (RSS of its workers)", "tollgate": "Tollgate (RSS of the tollgate process)"}
    for t in ("direct", "nginx", "tollgate"):
        if t not in sse: continue
        s = sse[t]
        errors = "" if not s["errors"] else " — errors: " + ", ".join(f"{k} × {v}" for k, v in s["errors"].items())
        w(f"| {labels[t]} | {s['completed']}/{s['streams']}{errors} | {s['max_concurrent']} | {s['ttfb_p50_ms']} / {s['ttfb_p99_ms']} | {s['duration_p50_s']} | {s['events_per_stream_min']}–{s['events_per_stream_max']} | {s['usage_chunks_seen']} / {s.get('usage_null_fields_seen', 0)} | {s['rss_peak_kb'] / 1024:.0f} MB |")
if memory:
    w("")
    w("## Tollgate resident memory")
    w("")
    w("| when | RSS |")
    w("|---|---|")
    for m in memory:
        w(f"| {m['what']} | {m['rss_kb'] / 1024:.0f} MB |")
w("")
w("## How it was run")
w("")
w("\`\`\`")
w("$COMMAND")
w("# per target, peak:       wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --timeout 5s --latency -s bench/wrk/chat.lua URL   (TOLLGATE_KEY=<key> for Tollgate)")
w("# per target, fixed rate: WRK_DELAY_MS=$PACE_MS wrk -c<rate × $PACE_MS / 1000> -d${DURATION}s --latency -s bench/wrk/chat.lua URL")
w("# SSE:                    python3 bench/sse/sse_bench.py client --url URL --streams $SSE_STREAMS --ramp-seconds 3")
w("\`\`\`")
w("")
w("nginx: \`bench/nginx/bench.conf\` ($NGINX_WORKERS workers, access log off, keep-alive to the upstream); Tollgate: \`tollgate serve\` with DATABASE_URL pointing at a")
w("throwaway PostgreSQL with durable settings (fsync, synchronous_commit, full_page_writes on).")
w("")
w("## Machine")
w("")
w("""$MACHINE""")
open(out, "w").write("\n".join(lines) + "\n")
PY
log "wrote $OUT"
