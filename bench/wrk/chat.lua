-- wrk script: POST an OpenAI chat completion request.
--   TOLLGATE_KEY   subscription key, sent as `Authorization: Bearer …` (unset for the nginx-only targets)
--   WRK_DELAY_MS   pause between a connection's requests, in ms: with C connections this paces the load at about
--                  C * 1000 / (WRK_DELAY_MS + latency) requests/s, for latency at a fixed, lower rate
-- At the end it prints one machine-readable line, `RESULT key=value …`, latencies in microseconds.
--   WRK_MODEL      the request's model (default gpt-4o-mini)
local key = os.getenv("TOLLGATE_KEY")
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "")
local model = os.getenv("WRK_MODEL") or "gpt-4o-mini"

wrk.method = "POST"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
wrk.headers["Content-Type"] = "application/json"
if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
end

if pause then
    function delay()
        return pause
    end
end

function done(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
        e.status, e.connect, e.read, e.write, e.timeout))
end
