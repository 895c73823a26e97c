#!/usr/bin/env bash
# Smoke test of the container image (CI runs it after deploy/container/build.sh): the container on the host network
# against a throwaway PostgreSQL on loopback (DATABASE_URL), answers /readyz, meters one request through the mock
# backend (the row is in usage_events, priced by the shipped catalog), and stops on SIGTERM with exit code 0.
# Prints "container smoke: ok" last on success. Every wait is on a condition with a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="${TOLLGATE_IMAGE:-tollgate:latest}"
PODMAN=(podman --runtime "${PODMAN_RUNTIME:-runc}")
# podman raises the container's open-file and process limits above this process's own by default, which needs
# CAP_SYS_RESOURCE; where that is missing (this CI), ask for limits within the current hard ones.
HARD_NOFILE="$(ulimit -Hn)"; [ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=65536; [ "$HARD_NOFILE" -gt 65536 ] && HARD_NOFILE=65536
LIMITS=(--ulimit "nofile=$HARD_NOFILE:$HARD_NOFILE" --ulimit nproc=4096:4096)
NAME="tollgate-smoke-$$"
WORK="$(mktemp -d /tmp/tollgate-smoke.XXXXXX)"
chmod 755 "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG_BIN="$(pg_config --bindir)"
PGPORT="$(free_port)"; PORT="$(free_port)"
cleanup() {
    "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "container smoke: FAILED: $*"; "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -40 || true; exit 1; }

[ "$(id -u)" = 0 ] && chown postgres "$WORK"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg/server.log" start \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off" >/dev/null
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE tollgate"
URL="postgres://postgres@127.0.0.1:$PGPORT/tollgate?sslmode=disable"
sql() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d tollgate -Atc "$1"; }

cp examples/tollgate.yaml "$WORK/tollgate.yaml"; chmod 644 "$WORK/tollgate.yaml"
"${PODMAN[@]}" run -d --name "$NAME" --network host "${LIMITS[@]}" \
    -e DATABASE_URL="$URL" -e TOLLGATE_HOST=127.0.0.1 -e TOLLGATE_PORT="$PORT" -e TOLLGATE_ADMIN_TOKEN=smoke-admin-token-0123456789 \
    -e TOLLGATE_CONFIG=/etc/tollgate/tollgate.yaml -v "$WORK/tollgate.yaml:/etc/tollgate/tollgate.yaml:ro" \
    "$IMAGE" >/dev/null

ready=""
for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '"ready"'; then ready=1; break; fi
    [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "the container exited before it was ready"
    sleep 0.1
done
[ -n "$ready" ] || fail "/readyz did not answer ready within 60 s"
echo "readyz: $(curl -sS "http://127.0.0.1:$PORT/readyz")"
user="$("${PODMAN[@]}" exec "$NAME" sh -c 'id -u' 2>/dev/null || "${PODMAN[@]}" top "$NAME" user | tail -1)"
[ "$(echo "$user" | tr -d ' ')" != root ] && [ "$(echo "$user" | tr -d ' ')" != 0 ] || fail "the gateway runs as root"
echo "runs as: $user"

# The CLI in the image: a key, and the shipped catalog's prices.
# The key is the output's last line: a CLI warning logged on the way may come first.
KEY="$("${PODMAN[@]}" exec "$NAME" /usr/local/bin/tollgate keys create --subscription team-search-prod --quiet | tail -1)"
"${PODMAN[@]}" exec "$NAME" /usr/local/bin/tollgate prices import --catalog openai
headers="$WORK/headers"
chat() {
    curl -sS -o "$WORK/reply" -w '%{http_code}' -D "$headers" "http://127.0.0.1:$PORT/v1/chat/completions" -H "Authorization: Bearer $KEY" \
        -H "Content-Type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello from the smoke test"}]}'
}
# A new key reaches the running gateway's catalog by NOTIFY: until then it answers 401. Wait for that, nothing else.
status="$(chat)"
for _ in $(seq 1 50); do [ "$status" = 401 ] || break; sleep 0.2; status="$(chat)"; done
[ "$status" = 200 ] || fail "the chat completion answered $status: $(cat "$WORK/reply")"
reply="$(cat "$WORK/reply")"
echo "$reply" | grep -q '"total_tokens"' || fail "no usage in the reply: $reply"
REQUEST_ID="$(awk -F': ' 'tolower($1) == "x-request-id" { gsub("\r", "", $2); print $2 }' "$headers")"
[ -n "$REQUEST_ID" ] || fail "no x-request-id on the reply"
landed=""
for _ in $(seq 1 100); do
    if [ "$(sql "SELECT count(*) FROM usage_events WHERE request_id = '$REQUEST_ID'")" = 1 ]; then landed=1; break; fi
    sleep 0.1
done
[ -n "$landed" ] || fail "request $REQUEST_ID was not metered within 10 s"
echo "metered: $(sql "SELECT model, prompt_tokens, completion_tokens, usage_source FROM usage_events WHERE request_id = '$REQUEST_ID'")"

# SIGTERM: drains and exits 0 (podman stop sends the image's STOPSIGNAL, then SIGKILL after the timeout).
started=$(date +%s%N)
"${PODMAN[@]}" stop -t 40 "$NAME" >/dev/null
stopped=$(date +%s%N)
code="$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
"${PODMAN[@]}" logs "$NAME" >"$WORK/container.log" 2>&1  # to a file: `grep -q` on a pipe would SIGPIPE podman under pipefail
grep -q "Shutdown requested" "$WORK/container.log" || fail "the log does not show the drain"
echo "stopped on SIGTERM in $(( (stopped - started) / 1000000 )) ms, exit 0"
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $SIZE bytes ($((SIZE / 1024 / 1024)) MiB)"
echo "container smoke: ok"
