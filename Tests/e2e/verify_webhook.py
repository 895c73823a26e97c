#!/usr/bin/env python3
"""Verifies Tollgate's webhooks with an independent Standard Webhooks implementation (PyPI `standardwebhooks`).

    pip install standardwebhooks

Two modes:

  serve   A receiver on 127.0.0.1: verifies every POST, answers 204 when the signature verifies and 400 when it
          does not, prints one JSON line per delivery, and exits 0 once --count deliveries have verified
          (1 on a bad signature or when --timeout passes first). Register it with
          `tollgate webhooks create --url http://127.0.0.1:PORT/hook --secret whsec_…` and run the server with
          loopback targets allowed.

              verify_webhook.py serve --port 8787 --secret whsec_... --count 1 --timeout 60

  check   Verifies one captured delivery: a JSON file {"headers": {"webhook-id": ..., ...}, "body": "..."}.

              verify_webhook.py check --secret whsec_... --file delivery.json
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

EVENT_TYPES = {
    "budget.threshold_crossed",
    "budget.exceeded",
    "budget.forecast_exceeded",
    "subscription.suspended",
    "subscription.reactivated",
}


def verify(secret: str, headers: dict, body: bytes) -> dict:
    """Returns the parsed payload; raises WebhookVerificationError or ValueError."""
    wanted = {name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    payload = Webhook(secret).verify(body, wanted)
    if payload.get("type") not in EVENT_TYPES:
        raise ValueError(f"unknown event type {payload.get('type')!r}")
    if "timestamp" not in payload or "data" not in payload:
        raise ValueError("payload lacks timestamp or data")
    return payload


def serve(args: argparse.Namespace) -> int:
    verified = []
    failed = []
    done = threading.Event()
    lock = threading.Lock()  # deliveries arrive on several threads; one JSON line each

    def emit(record: dict) -> None:
        with lock:
            print(json.dumps(record), flush=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = verify(args.secret, headers, body)
            except (WebhookVerificationError, ValueError) as error:
                failed.append(str(error))
                emit({"webhook_id": headers.get("webhook-id"), "verified": False, "error": str(error)})
                self.send_response(400)
                self.end_headers()
                done.set()
                return
            with lock:
                verified.append(headers.get("webhook-id"))
            emit({"webhook_id": headers.get("webhook-id"), "type": payload["type"], "verified": True})
            self.send_response(204)
            self.end_headers()
            if len(verified) >= args.count:
                done.set()

        def log_message(self, *_):  # keep stdout to the JSON lines
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"listening": f"http://127.0.0.1:{server.server_address[1]}/hook"}), flush=True)
    done.wait(args.timeout)
    time.sleep(0.2)  # let the last response go out
    server.shutdown()
    if failed:
        print(f"FAIL: {len(failed)} delivery(ies) did not verify", file=sys.stderr)
        return 1
    if len(verified) < args.count:
        print(f"FAIL: {len(verified)} of {args.count} deliveries verified before the timeout", file=sys.stderr)
        return 1
    print(f"OK: {len(verified)} delivery(ies) verified with standardwebhooks", file=sys.stderr)
    return 0


def check(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as handle:
        capture = json.load(handle)
    headers = {k.lower(): v for k, v in capture["headers"].items()}
    try:
        payload = verify(args.secret, headers, capture["body"].encode("utf-8"))
    except (WebhookVerificationError, ValueError) as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"webhook_id": headers["webhook-id"], "type": payload["type"], "verified": True}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    serve_parser = modes.add_parser("serve", help="receive and verify deliveries")
    serve_parser.add_argument("--port", type=int, default=8787, help="0 picks a free port (printed first)")
    serve_parser.add_argument("--secret", required=True, help="the endpoint's whsec_ secret")
    serve_parser.add_argument("--count", type=int, default=1, help="exit 0 after this many verified deliveries")
    serve_parser.add_argument("--timeout", type=float, default=60, help="seconds to wait")
    check_parser = modes.add_parser("check", help="verify one captured delivery")
    check_parser.add_argument("--secret", required=True)
    check_parser.add_argument("--file", required=True)
    args = parser.parse_args()
    return serve(args) if args.mode == "serve" else check(args)


if __name__ == "__main__":
    sys.exit(main())
