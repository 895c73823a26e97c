"""End to end: a hard token budget in tollgate.yaml, crossed through the official SDK against `tollgate serve`;
the next request gets 403, and the signed webhooks verify with the independent `standardwebhooks` package."""
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from standardwebhooks.webhooks import Webhook

from test_gateway_sdk import Gateway, free_port, stop_cluster

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver(BaseHTTPRequestHandler):
    deliveries = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(SECRET).verify(body, headers)  # raises on a bad signature
            Receiver.deliveries.append({"id": headers["webhook-id"], "payload": payload, "verified": True})
            self.send_response(204)
        except Exception as error:  # noqa: BLE001 — any failure is a bad delivery
            Receiver.deliveries.append({"error": str(error), "verified": False})
            self.send_response(400)
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def budgeted_gateway():
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data_dir = tempfile.mkdtemp(prefix="tollgate-e2e-budget-")
    os.chmod(data_dir, 0o755)
    config = os.path.join(data_dir, "tollgate.yaml")
    with open(config, "w") as f:
        f.write("""
backends:
  - name: mock
    kind: mock
    models: [mock-model]
products:
  - name: standard
subscriptions:
  - id: capped-team
    team: capped
    product: standard
budgets:
  - name: capped-monthly
    scope: subscription
    target: capped-team
    metric: tokens
    period: monthly
    limit: 100
    forecast: false
    thresholds:
      - { percent: 50, action: alert }
      - { percent: 100, action: suspend }
""")
    env = dict(os.environ, TOLLGATE_WEBHOOKS_ALLOW_LOOPBACK="true", TOLLGATE_LOG_LEVEL="warning")
    env.pop("DATABASE_URL", None)
    gw = Gateway(data_dir, config, free_port(), env)
    gw.start()
    gw.cli("webhooks", "create", "--url", f"http://127.0.0.1:{receiver.server_address[1]}/hook", "--secret", SECRET)
    gw.key = gw.cli("keys", "create", "--subscription", "capped-team", "--quiet").strip()
    yield gw
    if gw.process.poll() is None:
        gw.stop()
    receiver.shutdown()
    stop_cluster(data_dir)


def test_hard_budget_suspends_and_signed_webhooks_verify(budgeted_gateway):
    gw = budgeted_gateway
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=gw.key, max_retries=0)
    # Each mock reply costs about 16 tokens (prompt estimate + 14 words): the 100-token budget is crossed in a few calls.
    suspended_at = None
    for attempt in range(20):
        try:
            client.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "hello"}])
        except openai.PermissionDeniedError as error:
            suspended_at = attempt
            assert error.code == "subscription_suspended"
            assert "capped-monthly" in error.message
            break
        time.sleep(0.3)  # let the writer land the usage and the evaluator act
    assert suspended_at is not None, "the subscription was never suspended"

    deadline = time.time() + 15
    wanted = {"budget.threshold_crossed", "budget.exceeded", "subscription.suspended"}
    while time.time() < deadline and not wanted <= {d["payload"]["type"] for d in Receiver.deliveries if d["verified"]}:
        time.sleep(0.2)
    assert all(d["verified"] for d in Receiver.deliveries), Receiver.deliveries
    types = [d["payload"]["type"] for d in Receiver.deliveries]
    assert wanted <= set(types), types
    # Each threshold fires once per period: exactly one suspension message.
    assert types.count("subscription.suspended") == 1

    state = gw.sql("SELECT state, state_actor FROM subscriptions WHERE id = 'capped-team'")
    assert state == [["suspended", "rules-engine"]]
    audit = gw.sql("SELECT count(*) FROM reporting.budget_events WHERE budget = 'capped-monthly'")
    assert int(audit[0][0]) >= 2
