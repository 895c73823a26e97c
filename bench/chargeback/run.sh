#!/usr/bin/env bash
# Times a monthly chargeback (CSV, JSON, FOCUS through the tollgate CLI, and the reporting.chargeback_monthly view)
# after 1M and then 10M usage events. Needs a scratch database: BENCH_DATABASE_URL=postgres://…/db (it is wiped).
# Never run by `swift test`; prints figures, asserts nothing about them.
set -euo pipefail
cd "$(dirname "$0")/../.."
URL="${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch database}"
TOLLGATE="${TOLLGATE:-$(swift build -c release --show-bin-path)/tollgate}"  # needs a root command that registers ReportCommand
psql "$URL" -q -c "DROP SCHEMA IF EXISTS reporting CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
for f in sql/*.sql; do psql "$URL" -q -v ON_ERROR_STOP=1 -1 -f "$f"; done
time_it() {  # best of 3 wall-clock seconds
    local best=""
    for _ in 1 2 3; do
        local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
        local d; d=$(echo "$e - $s" | bc); if [ -z "$best" ] || [ "$(echo "$d < $best" | bc)" = 1 ]; then best=$d; fi
    done
    printf '%.3f' "$best"
}
for step in 1000000 9000000; do
    psql "$URL" -q -v events=$step -f bench/chargeback/generate.sql
    total=$(psql "$URL" -Atc "SELECT count(*) FROM usage_events"); rows=$(psql "$URL" -Atc "SELECT count(*) FROM usage_hourly"); daily=$(psql "$URL" -Atc "SELECT count(*) FROM usage_daily_rollup")
    csv=$(DATABASE_URL="$URL" time_it "$TOLLGATE" report chargeback --period 2026-10 --group-by team --format csv)
    json=$(DATABASE_URL="$URL" time_it "$TOLLGATE" report chargeback --period 2026-10 --group-by subscription --format json)
    focus=$(DATABASE_URL="$URL" time_it "$TOLLGATE" report chargeback --period 2026-10 --format focus)
    view=$(time_it psql "$URL" -Atc "SELECT team, charge_type, sum(cost) FROM reporting.chargeback_monthly WHERE period_start = '2026-10-01T00:00:00Z' GROUP BY 1, 2")
    echo "events=$total hourly_rows=$rows daily_rows=$daily csv_by_team=${csv}s json_by_subscription=${json}s focus=${focus}s view_chargeback_monthly=${view}s"
done
