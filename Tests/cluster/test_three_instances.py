"""Three `tollgate serve` on one PostgreSQL behind a local nginx, under steady load: the budget evaluator's leader is
killed (SIGKILL) and another takes over with no threshold firing twice; then a rolling restart with SIGTERM, one
instance at a time, fails no request and loses no acknowledged usage, each instance draining its in-flight requests
and its spool before it exits 0. Afterwards the ledger, the rollups and a chargeback export priced from the shipped
catalog are checked against what the clients were told. Bounded: at most 20,000 requests and a few minutes."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from decimal import Decimal

import pytest

from cluster import BINARY, Instance, Load, Nginx, Postgres, wait_until

# About 1,500 mock replies' worth: the 10 % threshold fires before the leader is killed, 50 % and 90 % after it.
BUDGET_TOKENS = 33_000

CONFIG = f"""
backends:
  - name: mock
    kind: mock
    mock_latency_ms: 40
    models: [gpt-4o-mini]
products:
  - name: standard
subscriptions:
  - id: cluster-load
    team: platform
    cost_center: CC-7
    product: standard
budgets:
  - name: cluster-monthly
    scope: subscription
    target: cluster-load
    metric: tokens
    period: monthly
    limit: {BUDGET_TOKENS}
    forecast: false
    thresholds:
      - {{ percent: 10, action: alert }}
      - {{ percent: 50, action: alert }}
      - {{ percent: 90, action: alert }}
"""


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (scripts/test installs it when run as root)")
    directory = tempfile.mkdtemp(prefix="tollgate-cluster-")
    os.chmod(directory, 0o755)
    postgres = Postgres(os.path.join(directory, "pg"))
    postgres.start()
    config = os.path.join(directory, "tollgate.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    env = dict(os.environ, TOLLGATE_LOG_LEVEL="info", TOLLGATE_ADMIN_TOKEN="cluster-admin-token-0123456789",
               TOLLGATE_BUDGET_SWEEP_SECONDS="1", TOLLGATE_SHUTDOWN_DELAY_SECONDS="2", TOLLGATE_DRAIN_TIMEOUT_SECONDS="20",
               TOLLGATE_DATABASE_CONNECTIONS="4")
    instances = [Instance(f"tollgate-{n}", directory, config, postgres.url, env) for n in range(3)]
    nginx = Nginx(os.path.join(directory, "nginx"), [i.port for i in instances])
    try:
        for instance in instances:  # one after another: each applies tollgate.yaml at start
            instance.start()
        nginx.start()
        key = subprocess.run([BINARY, "keys", "create", "--subscription", "cluster-load", "--quiet"],
                             env=dict(env, DATABASE_URL=postgres.url), capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        # Keys reach every instance's catalog by NOTIFY: wait until each one accepts the new key before the load starts.
        for instance in instances:
            wait_until(lambda: instance.accepts(key), 30, f"{instance.name} to accept the new key")
        yield postgres, instances, nginx, key, env
    finally:
        nginx.stop()
        for instance in instances:
            if instance.process and instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait()
        postgres.stop()
        if os.environ.get("TOLLGATE_KEEP_CLUSTER_TEST") is None:
            shutil.rmtree(directory, ignore_errors=True)


def firings(postgres):
    return postgres.psql("SELECT percent, count(*) FROM budget_firings WHERE budget = 'cluster-monthly' GROUP BY percent ORDER BY percent")


def test_leader_kill_and_rolling_restart_lose_nothing(cluster):
    postgres, instances, nginx, key, env = cluster
    load = Load(nginx.port, key)
    load.start()
    figures = {}
    try:
        # Warm up until the first threshold has fired (usage is landing and the leader evaluates).
        wait_until(lambda: any(p == "10" for p, _ in firings(postgres)), 60, "the 10% threshold to fire")
        leaders = wait_until(lambda: [i for i in instances if i.is_leader()] or None, 20, "a budget evaluator leader")
        assert len(leaders) == 1, [i.name for i in leaders]
        leader = leaders[0]

        # 1. Kill the leader outright. Another instance takes the lock; the killed one comes back and replays its spool.
        killed_at = time.time()
        leader.kill()
        successor = wait_until(lambda: next((i for i in instances if i is not leader and i.is_leader()), None), 30,
                               "another instance to take the leader lock")
        figures["leader takeover s"] = round(time.time() - killed_at, 2)
        leader.start()
        kill_window = (killed_at - 0.1, time.time())

        # 2. Rolling restart, one instance at a time, under load.
        drains = []
        for instance in instances:
            before = load.count()
            instance.process.send_signal(signal.SIGTERM)
            sent = time.time()
            # Readiness turns 503 `draining` at once, while the listener is still open for the shutdown delay.
            status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(instance.readyz()), 5, f"{instance.name} /readyz 503")
            assert body.get("status") == "draining"
            # The balancer's controller sees the 503 and takes the instance out, within the shutdown delay.
            nginx.mark_down(instance.port)
            figures.setdefault("out of rotation after SIGTERM s", []).append(round(time.time() - sent, 2))
            code = instance.process.wait(timeout=60)
            drains.append(round(time.time() - sent, 2))
            assert code == 0, f"{instance.name} exited {code}:\n{instance.output(since_start=True)[-3000:]}"
            assert instance.spool_files() == [], f"{instance.name} left usage in its spool: {instance.spool_files()}"
            assert "Budget evaluator leadership released" in instance.output(since_start=True) or not instance.is_leader()
            instance.start()
            nginx.mark_up(instance.port)
            # Some load passed while this instance was away.
            wait_until(lambda: load.count() > before + 20, 30, "load to continue during the restart")
        figures["drain s (SIGTERM to exit, incl. 2 s delay)"] = drains
        figures["PostgreSQL sessions for 3 instances (pool 4)"] = int(postgres.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'tollgate' AND pid <> pg_backend_pid()")[0][0])
        wait_until(lambda: any(i.is_leader() for i in instances), 30, "a leader after the rolling restart")
        # Run on until the budget is used up, so every threshold has had to fire on whichever instance leads.
        tokens = lambda: sum(r[5]["total_tokens"] for r in load.snapshot() if r[2] == 200)
        wait_until(lambda: tokens() >= BUDGET_TOKENS, 150, f"{BUDGET_TOKENS} tokens of load", interval=0.5)
    finally:
        load.stop()

    results = load.snapshot()
    acknowledged = {r[3]: r for r in results if r[2] == 200}
    failed = [r for r in results if r[2] != 200]
    # A request in flight on the instance that was killed may fail (nginx cannot retry a POST it has sent). Nothing
    # else may: the rolling restart must be invisible to clients.
    unexplained = [r for r in failed if not (kill_window[0] <= r[1] and r[0] <= kill_window[1])]
    assert unexplained == [], unexplained[:5]
    duplicates = len([r for r in results if r[2] == 200]) - len(acknowledged)
    assert duplicates == 0, "a request id was handed out twice"

    # Every acknowledged request lands exactly once (the killed instance's spool is replayed at its restart).
    def landed():
        rows = postgres.psql("SELECT request_id, prompt_tokens, completion_tokens, total_tokens FROM usage_events WHERE subscription_id = 'cluster-load'")
        return {r[0]: r for r in rows}
    warm_ups = set().union(*(i.warm_ups for i in instances))
    ledger = wait_until(lambda: (lambda l: l if set(acknowledged) | warm_ups <= set(l) else None)(landed()), 30,
                        "every acknowledged request in the ledger")
    for request_id, (_, _, _, _, _, usage, _) in acknowledged.items():
        row = ledger[request_id]
        assert [int(row[1]), int(row[2]), int(row[3])] == [usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]], request_id
    assert len({r[5]["total_tokens"] for r in acknowledged.values()}) == 1, "the mock's reply is the same every time"
    extra = set(ledger) - set(acknowledged) - warm_ups  # metered but not acknowledged: only requests cut off by the kill
    assert len(extra) <= len(failed)

    # Rollups agree with the ledger, hour by hour and day by day.
    raw = postgres.psql("SELECT count(*), sum(total_tokens) FROM usage_events WHERE subscription_id = 'cluster-load'")[0]
    hourly = postgres.psql("SELECT sum(requests), sum(total_tokens) FROM usage_hourly WHERE subscription_id = 'cluster-load'")[0]
    daily = postgres.psql("SELECT sum(requests), sum(total_tokens) FROM usage_daily_rollup WHERE subscription_id = 'cluster-load'")[0]
    assert raw == hourly == daily, (raw, hourly, daily)

    # Each threshold fired once in the period, across the leader change and the restarts.
    wait_until(lambda: len(firings(postgres)) == 3, 30, "the 10/50/90% thresholds to fire")
    assert firings(postgres) == [["10", "1"], ["50", "1"], ["90", "1"]]

    # A chargeback export priced from the shipped catalog: tokens as landed, the amount from the catalog's figures.
    cli_env = dict(env, DATABASE_URL=postgres.url, TOLLGATE_LOG_LEVEL="warning")
    imported = subprocess.run([BINARY, "prices", "import", "--catalog", "openai"], cwd=tempfile.gettempdir(),
                              env=cli_env, capture_output=True, text=True, check=True).stdout
    assert imported.startswith("catalog:openai@"), imported
    months = [m for (m,) in postgres.psql("SELECT DISTINCT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM') FROM usage_events")]
    prompt = completion = requests = 0
    amount = Decimal(0)
    for month in months:
        report = subprocess.run([BINARY, "report", "chargeback", "--period", month, "--group-by", "subscription", "--format", "json"],
                                env=cli_env, capture_output=True, text=True, check=True).stdout
        for line in json.loads(report)["lines"]:
            if line["group"] == "cluster-load":
                assert line["charge_type"] != "unpriced", line
                requests += line["requests"]
                prompt += line["prompt_tokens"]
                completion += line["completion_tokens"]
                amount += Decimal(line["unrounded_amount"])
    assert requests == int(raw[0])
    assert prompt + completion == int(raw[1])
    # gpt-4o-mini in prices/openai.csv: 0.15 per 1M prompt tokens, 0.60 per 1M completion tokens (nothing cached),
    # exactly (the export's unrounded amount has 10 decimal places).
    expected = (Decimal(prompt) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / Decimal(1_000_000)
    assert amount == expected.quantize(Decimal("0.0000000001")), (amount, expected)

    copy = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-d", "tollgate", "-c",
                           "COPY (SELECT * FROM usage_events LIMIT 1000) TO STDOUT"], capture_output=True, text=True, check=True).stdout
    figures["usage row as COPY text, bytes"] = round(len(copy) / max(1, copy.count("\n")))
    figures.update(requests=len(results), acknowledged=len(acknowledged), failed=len(failed),
                   failed_outside_kill=len(unexplained), rows_landed=int(raw[0]), duplicates=duplicates, unacknowledged_rows=len(extra),
                   seconds=round(max(r[1] for r in results) - min(r[0] for r in results), 1),
                   chargeback_unrounded_usd=str(amount))
    print("\nthree-instance figures:", figures)
