#!/usr/bin/env python3
"""Streaming (SSE) half of the gateway benchmark. Standard library only.

  sse_bench.py upstream --port P [--chunks 40 --interval-ms 250]
      A slow OpenAI-compatible upstream: POST …/chat/completions with "stream": true answers with server-sent events,
      one content chunk every interval, then the finish chunk, the usage chunk when the request set
      stream_options.include_usage, and `data: [DONE]`. Without "stream" it answers a fixed chat.completion.

  sse_bench.py client --url URL [--key K] --streams 1000 [--ramp-seconds 3]
      Opens that many concurrent streaming requests (one connection each), reads every event, and prints one JSON
      summary line: how many streams completed, how many were open at once, time to first event, events per stream.

Each stream lasts chunks x interval (10 s by default), so with a short ramp all streams are open at the same time
for most of the run; run-gateway.sh samples the gateway's resident memory meanwhile.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

FIXED_COMPLETION = {
    "id": "chatcmpl-sse-bench-fixed", "object": "chat.completion", "created": 1764028800, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the streaming upstream."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 7, "total_tokens": 26},
}


# ---------------------------------------------------------------------------------------------------------- upstream

async def read_request(reader):
    """One HTTP/1.1 request: (method, path, headers, body), or None at end of connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected: the empty line
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return method, path, headers, body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(payload) -> bytes:
    return chunk(b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()) + b"\n\n")


async def serve_upstream(args):
    counter = 0

    async def handle(reader, writer):
        nonlocal counter
        try:
            while True:
                try:
                    method, path, headers, body = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if method != "POST" or not path.split("?")[0].endswith("/chat/completions"):
                    msg = b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}'
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
                    await writer.drain()
                    continue
                request = json.loads(body or b"{}")
                if not request.get("stream"):
                    payload = json.dumps(FIXED_COMPLETION).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
                    await writer.drain()
                    continue
                counter += 1
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                base = {"id": f"chatcmpl-sse-{counter}", "object": "chat.completion.chunk", "created": 1764028800,
                        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}
                if include_usage:
                    base["usage"] = None  # OpenAI sends "usage": null on every chunk but the last when usage is asked for
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                writer.write(sse(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])))
                await writer.drain()
                for i in range(args.chunks):
                    await asyncio.sleep(args.interval_ms / 1000)
                    writer.write(sse(dict(base, choices=[{"index": 0, "delta": {"content": f"tok{i} "}, "logprobs": None, "finish_reason": None}])))
                    await writer.drain()
                writer.write(sse(dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])))
                if include_usage:
                    writer.write(sse(dict(base, choices=[], usage={"prompt_tokens": 19, "completion_tokens": args.chunks,
                                                                      "total_tokens": 19 + args.chunks,
                                                                      "prompt_tokens_details": {"cached_tokens": 0},
                                                                      "completion_tokens_details": {"reasoning_tokens": 0}})))
                writer.write(sse(b"[DONE]"))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=4096, limit=1 << 20)
    print(f"sse upstream listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------------------------------------ client

class Stats:
    def __init__(self):
        self.open = 0
        self.max_open = 0
        self.ttfb = []
        self.durations = []
        self.events = []
        self.usage_chunks = 0
        self.usage_nulls = 0
        self.errors = {}

    def error(self, message):
        self.errors[message] = self.errors.get(message, 0) + 1


async def one_stream(args, host, port, path, stats: Stats, delay):
    await asyncio.sleep(delay)
    body = json.dumps({"model": args.model, "stream": True,
                       "messages": [{"role": "user", "content": "Count slowly."}]}).encode()
    headers = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
               "Accept: text/event-stream", f"Content-Length: {len(body)}", "Connection: close"]
    if args.key:
        headers.append(f"Authorization: Bearer {args.key}")
    started = time.monotonic()
    opened = False
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), args.timeout)
        stats.open += 1
        opened = True
        stats.max_open = max(stats.max_open, stats.open)
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        if status != 200:
            stats.error(f"HTTP {status}")
            return
        chunked = "transfer-encoding: chunked" in head.lower()
        buffer = b""
        events = 0
        first = None
        done = False
        while not done:
            if chunked:
                size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), args.timeout)).split(b";")[0], 16)
                if size == 0:
                    break
                data = await asyncio.wait_for(reader.readexactly(size + 2), args.timeout)
                buffer += data[:-2]
            else:
                data = await asyncio.wait_for(reader.read(65536), args.timeout)
                if not data:
                    break
                buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if first is None:
                        first = time.monotonic() - started
                    if payload == b"[DONE]":
                        done = True
                        continue
                    events += 1
                    if b'"usage":{' in payload:
                        stats.usage_chunks += 1
                    elif b'"usage":null' in payload:
                        stats.usage_nulls += 1  # present only when stream_options.include_usage was sent upstream
        if not done:
            stats.error("stream ended without [DONE]")
            return
        stats.ttfb.append(first)
        stats.durations.append(time.monotonic() - started)
        stats.events.append(events)
    except asyncio.TimeoutError:
        stats.error("timeout")
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as error:
        stats.error(type(error).__name__)
    finally:
        if opened:
            stats.open -= 1
        if writer is not None:
            writer.close()


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run_client(args):
    from urllib.parse import urlsplit
    url = urlsplit(args.url)
    stats = Stats()
    started = time.monotonic()
    tasks = [one_stream(args, url.hostname, url.port or 80, url.path, stats, args.ramp_seconds * i / args.streams)
             for i in range(args.streams)]
    await asyncio.gather(*tasks)
    ms = lambda v: None if v is None else round(v * 1000, 1)
    summary = {
        "streams": args.streams, "completed": len(stats.durations), "failed": args.streams - len(stats.durations),
        "errors": stats.errors, "max_concurrent": stats.max_open,
        "ttfb_p50_ms": ms(percentile(stats.ttfb, 50)), "ttfb_p99_ms": ms(percentile(stats.ttfb, 99)),
        "duration_p50_s": round(percentile(stats.durations, 50) or 0, 2), "duration_max_s": round(max(stats.durations or [0]), 2),
        "events_per_stream_min": min(stats.events or [0]), "events_per_stream_max": max(stats.events or [0]),
        "usage_chunks_seen": stats.usage_chunks, "usage_null_fields_seen": stats.usage_nulls, "wall_s": round(time.monotonic() - started, 2),
    }
    print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--chunks", type=int, default=40)
    up.add_argument("--interval-ms", type=int, default=250)
    cl = sub.add_parser("client")
    cl.add_argument("--url", required=True)
    cl.add_argument("--key", default="")
    cl.add_argument("--model", default="gpt-4o-mini")
    cl.add_argument("--streams", type=int, default=1000)
    cl.add_argument("--ramp-seconds", type=float, default=3.0)
    cl.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.command == "upstream":
        asyncio.run(serve_upstream(args))
    else:
        sys.exit(asyncio.run(run_client(args)))


if __name__ == "__main__":
    main()
