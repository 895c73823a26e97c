"""End to end: `tollgate serve` on its embedded PostgreSQL, called with the official OpenAI Python SDK (OpenAI and
AzureOpenAI, streamed and not); the token sums in PostgreSQL must equal what the SDK received."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import openai
import pytest

import fake_upstream

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("TOLLGATE_BIN", os.path.join(ROOT, ".build", "debug", "tollgate"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, data_dir, config, port, env):
        self.data_dir, self.config, self.port, self.env = data_dir, config, port, env
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [BINARY, "serve", "--config", self.config, "--port", str(self.port), "--data-dir", self.data_dir],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"tollgate serve exited with {self.process.returncode}")
            if "tollgate listening on" in line:
                return
        raise RuntimeError("tollgate serve did not start in time")

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def cli(self, *args):
        return subprocess.run([BINARY, *args, "--data-dir", self.data_dir], env=self.env, capture_output=True, text=True, check=True).stdout

    def sql(self, query):
        with open(os.path.join(self.data_dir, "postgres.password")) as f:
            password = f.read().strip()
        with open(os.path.join(self.data_dir, "pgdata", "postmaster.pid")) as f:
            port = f.read().split("\n")[3]
        env = dict(os.environ, PGPASSWORD=password)
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "tollgate", "-d", "tollgate", "-At", "-F", "|", "-c", query],
                             env=env, capture_output=True, text=True, check=True).stdout
        return [line.split("|") for line in out.strip().splitlines() if line]


@pytest.fixture(scope="module")
def gateway():
    upstream = fake_upstream.start()
    up = upstream.server_address[1]
    data_dir = tempfile.mkdtemp(prefix="tollgate-e2e-")
    os.chmod(data_dir, 0o755)
    config = os.path.join(data_dir, "tollgate.yaml")
    with open(config, "w") as f:
        f.write(f"""
backends:
  - name: fake-openai
    kind: openai
    base_url: http://127.0.0.1:{up}/v1
    credential_env: E2E_UPSTREAM_KEY
    models: [gpt-4o-mini, text-embedding-3-small]
  - name: fake-azure
    kind: azure
    base_url: http://127.0.0.1:{up}
    credential_env: E2E_UPSTREAM_KEY
    deployments:
      - name: gpt4o-prod
        model: gpt-4o
  - name: mock
    kind: mock
    models: [mock-model]
  # A pool: the provisioned backend first (it answers 429), pay-as-you-go behind it.
  - name: ptu
    kind: openai
    base_url: http://127.0.0.1:{up}/v1
    credential_env: E2E_UPSTREAM_KEY
    deployments:
      - {{ name: pooled-4o, model: throttled-4o, priority: 1 }}
  - name: paygo
    kind: openai
    base_url: http://127.0.0.1:{up}/v1
    credential_env: E2E_UPSTREAM_KEY
    deployments:
      - {{ name: pooled-4o, model: gpt-4o-mini, priority: 2 }}
products:
  - name: standard
subscriptions:
  - id: e2e-openai
    team: search
    cost_center: CC-1
    product: standard
  - id: e2e-azure
    team: support
    cost_center: CC-2
    product: standard
  - id: e2e-pool
    team: search
    product: standard
""")
    env = dict(os.environ, E2E_UPSTREAM_KEY="sk-e2e-upstream", TOLLGATE_LOG_LEVEL="warning")
    env.pop("DATABASE_URL", None)
    gw = Gateway(data_dir, config, free_port(), env)
    gw.start()
    gw.keys = {s: gw.cli("keys", "create", "--subscription", s, "--quiet").strip() for s in ("e2e-openai", "e2e-azure", "e2e-pool")}
    yield gw
    if gw.process.poll() is None:
        gw.stop()
    upstream.shutdown()
    # After the kill -9 test the cluster was started by an earlier process; stop it here.
    stop_cluster(data_dir)


def stop_cluster(data_dir):
    """Stops an embedded cluster that outlived the tollgate process which started it."""
    pg_ctl = os.path.join(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip(), "pg_ctl")
    command = [pg_ctl, "-D", os.path.join(data_dir, "pgdata"), "-m", "fast", "stop"]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--"] + command
    subprocess.run(command, capture_output=True)


def totals(gw, subscription):
    rows = gw.sql(f"SELECT count(*), coalesce(sum(prompt_tokens),0), coalesce(sum(completion_tokens),0), coalesce(sum(total_tokens),0), "
                  f"coalesce(sum(cached_tokens),0), coalesce(sum(reasoning_tokens),0) FROM usage_events WHERE subscription_id = '{subscription}'")
    return [int(x) for x in rows[0]]


def wait_for_rows(gw, subscription, count):
    deadline = time.time() + 10
    while time.time() < deadline:
        if totals(gw, subscription)[0] >= count:
            return
        time.sleep(0.1)


def test_openai_sdk_usage_equals_what_postgres_recorded(gateway):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=gateway.keys["e2e-openai"], max_retries=0)
    seen = [0, 0, 0]  # prompt, completion, total as the SDK received them

    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "Hi from upstream"
    seen = [a + b for a, b in zip(seen, [reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens])]

    # Streamed without include_usage: the SDK must see no usage at all (the gateway injected and hid it).
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi from upstream"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)

    # Streamed with include_usage: the SDK sees the usage chunk, as from OpenAI.
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True,
                                                 stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens == 22
    seen = [a + b for a, b in zip(seen, [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens])]

    emb = client.embeddings.create(model="text-embedding-3-small", input="abc")
    seen = [a + b for a, b in zip(seen, [emb.usage.prompt_tokens, 0, emb.usage.total_tokens])]

    wait_for_rows(gateway, "e2e-openai", 4)
    count, prompt, completion, total, cached, reasoning = totals(gateway, "e2e-openai")
    assert count == 4
    # The hidden-usage stream was metered from the injected usage chunk: 13/9/22 on top of what the SDK saw.
    assert [prompt, completion, total] == [seen[0] + 13, seen[1] + 9, seen[2] + 22]
    assert [cached, reasoning] == [12, 9]  # three chat replies × 4 cached, × 3 reasoning


def test_azure_sdk_through_the_deployment_route(gateway):
    client = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gateway.port}", api_version="2024-10-21",
                                api_key=gateway.keys["e2e-azure"], max_retries=0)
    reply = client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "hello"}])
    assert reply.usage.total_tokens == 22
    chunks = list(client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in chunks)
    wait_for_rows(gateway, "e2e-azure", 2)
    count, prompt, completion, total, cached, reasoning = totals(gateway, "e2e-azure")
    assert [count, prompt, completion, total] == [2, 26, 18, 44]
    sent = [r for r in fake_upstream.Handler.received if "/deployments/gpt4o-prod/" in r["path"]]
    assert sent and all(r["headers"].get("api-key") == "sk-e2e-upstream" for r in sent)
    assert all("api-version=2024-10-21" in r["path"] for r in sent)


def test_mock_backend_responses_api(gateway):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=gateway.keys["e2e-azure"], max_retries=0)
    response = client.responses.create(model="mock-model", input="Tell me something")
    assert "mock" in response.output_text
    streamed = client.responses.create(model="mock-model", input="Tell me something", stream=True)
    completed = [e for e in streamed if e.type == "response.completed"]
    assert completed and completed[0].response.usage.output_tokens == response.usage.output_tokens


def test_a_pool_fails_over_from_a_throttled_backend_and_the_rows_say_which_served(gateway):
    """The provisioned backend answers 429: with the SDK's own retries off, every call still succeeds (the gateway fails
    over before anything reaches the client), the throttled backend is skipped for its Retry-After, and PostgreSQL
    records the backend that served."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=gateway.keys["e2e-pool"], max_retries=0)
    for _ in range(3):
        reply = client.chat.completions.create(model="pooled-4o", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "Hi from upstream"
    chunks = list(client.chat.completions.create(model="pooled-4o", messages=[{"role": "user", "content": "hello"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi from upstream"
    throttled = [r for r in fake_upstream.Handler.received if r["body"].get("model") == "throttled-4o"]
    assert len(throttled) == 1  # then skipped for its 30 s
    wait_for_rows(gateway, "e2e-pool", 4)
    rows = gateway.sql("SELECT backend, deployment, http_status, usage_source FROM usage_events WHERE subscription_id = 'e2e-pool'")
    assert rows == [["paygo", "pooled-4o", "200", "reported"]] * 4


def test_wrong_key_gets_openai_shaped_401(gateway):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key="tgk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as error:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert error.value.code == "invalid_api_key"


def test_kill_dash_nine_loses_no_acknowledged_usage(gateway):
    """Usage is on disk (the spool) before the reply ends: a crash right after replies loses nothing."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=gateway.keys["e2e-openai"], max_retries=0)
    before = totals(gateway, "e2e-openai")[0]
    for _ in range(20):
        client.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "crash"}])
    gateway.stop(signal.SIGKILL)
    gateway.start()  # the spool is loaded at start; the embedded PostgreSQL kept running
    wait_for_rows(gateway, "e2e-openai", before + 20)
    assert totals(gateway, "e2e-openai")[0] == before + 20


def test_malformed_config_exits_non_zero_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "tollgate.yaml"
    bad.write_text("backends:\n  - name: mock\n    kind: mock\n    models: [m]\nsubscriptions:\n  - id: team-a\n    cost_centre: CC-1\n")
    result = subprocess.run([BINARY, "serve", "--config", str(bad), "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{bad}:7:18: subscriptions[0].cost_centre: unknown field 'cost_centre'" in result.stderr
    assert "Traceback" not in result.stderr and "Fatal error" not in result.stderr
    assert not (tmp_path / "data" / "pgdata").exists()  # nothing was started or changed


def test_help_teaches():
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "migrate", "apply", "keys", "report"):
        assert command in out
    assert "DATABASE_URL" in out
