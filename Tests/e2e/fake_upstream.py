"""A small OpenAI / Azure OpenAI stand-in for the end-to-end tests (loopback only).

Chat completions: usage 13 prompt (4 cached), 9 completion (3 reasoning), 22 total; streamed with 3 content
chunks and a usage chunk only when stream_options.include_usage is true. It records what it received."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {"prompt_tokens": 13, "completion_tokens": 9, "total_tokens": 22,
         "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}
PIECES = ["Hi", " from", " upstream"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        Handler.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        model = body.get("model") or self.path.split("/deployments/")[-1].split("/")[0]
        if self.path.endswith("/embeddings"):
            return self.reply({"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                               "usage": {"prompt_tokens": 6, "total_tokens": 6}})
        if model == "throttled-4o":  # a provisioned deployment at its limit, as Azure answers it
            data = json.dumps({"error": {"code": "429", "message": "Requests to the deployment have exceeded the rate limit."}}).encode()
            self.send_response(429)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after", "30")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        rid = f"chatcmpl-e2e-{len(Handler.received)}"
        if not body.get("stream"):
            return self.reply({"id": rid, "object": "chat.completion", "created": 1790000000, "model": model,
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES)}, "finish_reason": "stop"}],
                               "usage": USAGE})
        include = (body.get("stream_options") or {}).get("include_usage") is True
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(delta, finish=None):
            c = {"id": rid, "object": "chat.completion.chunk", "created": 1790000000, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if include:
                c["usage"] = None
            return c
        events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in PIECES] + [chunk({}, "stop")]
        if include:
            events.append({"id": rid, "object": "chat.completion.chunk", "created": 1790000000, "model": model, "choices": [], "usage": USAGE})
        for e in events:
            self.write_chunk(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n")
        self.write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def write_chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def reply(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
