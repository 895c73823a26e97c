"""Helpers of the several-instances test: a throwaway PostgreSQL, `tollgate serve` processes on it, a local nginx in
front of them, and a bounded load generator. Loopback only; every wait is on a condition with a deadline."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from test_gateway_sdk import BINARY, free_port  # noqa: E402 — one place says where the binary is and how a port is picked


def wait_until(condition, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def as_postgres(command):
    return ["runuser", "-u", "postgres", "--"] + command if os.getuid() == 0 else command


class Postgres:
    """A throwaway cluster on loopback (durability off: it is a test)."""

    def __init__(self, directory):
        self.directory = directory
        self.bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/tollgate?sslmode=disable"

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(self.directory, "postgres")
        data = os.path.join(self.directory, "data")
        subprocess.run(as_postgres([f"{self.bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]),
                       capture_output=True, check=True)
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(as_postgres([f"{self.bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(data, "server.log"), "start", "-o", options]),
                       capture_output=True, check=True)
        self.psql("CREATE DATABASE tollgate", database="postgres")

    def stop(self):
        subprocess.run(as_postgres([f"{self.bindir}/pg_ctl", "-D", os.path.join(self.directory, "data"), "-m", "immediate", "stop"]),
                       capture_output=True)

    def psql(self, query, database="tollgate"):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-At", "-F", "|",
                              "-v", "ON_ERROR_STOP=1", "-c", query], capture_output=True, text=True, check=True).stdout
        return [line.split("|") for line in out.strip().splitlines() if line]


class Instance:
    """One `tollgate serve` with its own data directory (and so its own spool), output in a log file."""

    def __init__(self, name, directory, config, database_url, env):
        self.name, self.directory, self.config = name, directory, config
        self.port = free_port()
        self.log = os.path.join(directory, f"{name}.log")
        self.env = dict(env, DATABASE_URL=database_url, TOLLGATE_DATA_DIR=os.path.join(directory, name))
        self.process = None
        self.starts = 0
        self.warm_ups = set()  # request ids of the set-up's own requests (metered like any other)

    def start(self):
        os.makedirs(self.env["TOLLGATE_DATA_DIR"], exist_ok=True)
        self.starts += 1
        self.log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        out = open(self.log, "a")
        self.process = subprocess.Popen([BINARY, "serve", "--config", self.config, "--host", "127.0.0.1", "--port", str(self.port)],
                                        env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        wait_until(lambda: self.readyz()[0] == 200 or self.process.poll() is not None, 120, f"{self.name} to be ready")
        assert self.process.poll() is None, f"{self.name} exited at start:\n{self.output()[-3000:]}"

    def output(self, since_start=False):
        with open(self.log) as f:
            if since_start:
                f.seek(self.log_offset)
            return f.read()

    def readyz(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            return response.status, json.loads(body or b"{}")
        except (OSError, http.client.HTTPException, ValueError):
            return None, {}

    def accepts(self, key):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                               body=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "warm-up"}]}))
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status == 200:
                self.warm_ups.add(response.getheader("x-request-id"))
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def spool_files(self):
        spool = os.path.join(self.env["TOLLGATE_DATA_DIR"], "spool")
        if not os.path.isdir(spool):
            return []
        return [f for f in os.listdir(spool) if not f.startswith(".") and f != "lock" and os.path.getsize(os.path.join(spool, f)) > 0]

    def is_leader(self):
        # The last leadership line of this process's run says whether it holds the budget evaluator's lock now.
        lines = [l for l in self.output(since_start=True).splitlines() if "Budget evaluator leadership" in l]
        return bool(lines) and lines[-1].endswith("acquired")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


class Nginx:
    """nginx round-robin over the instances; retries on the next one only what was never sent (connect errors).

    nginx (open source) has no active health checks, so `mark_down` plays the part of the balancer's controller (an
    ingress controller watching readiness, a load balancer's health probe): it rewrites the upstream with the instance
    `down` and reloads, which is graceful for requests in flight."""

    def __init__(self, directory, ports):
        self.directory, self.ports = directory, ports
        self.port = free_port()
        self.process = None
        self.down = set()

    def config(self):
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s{' down' if p in self.down else ''};" for p in self.ports)
        d = self.directory
        user = "user root root;" if os.getuid() == 0 else ""
        return f"""
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    upstream tollgate {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://tollgate;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_buffering off;
            proxy_set_header Host $host;
        }}
    }}
}}
"""

    def write(self):
        with open(os.path.join(self.directory, "nginx.conf"), "w") as f:
            f.write(self.config())

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        self.write()
        self.process = subprocess.Popen(["nginx", "-e", os.path.join(self.directory, "error.log"), "-p", self.directory,
                                         "-c", os.path.join(self.directory, "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def answers():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return bool(self.workers())
            except OSError:
                return self.process.poll() is not None
        wait_until(answers, 20, "nginx to listen")
        assert self.process.poll() is None, open(os.path.join(self.directory, "error.log")).read()

    def workers(self):
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.process.pid:
                        children.add(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return children

    def reload(self):
        """Applies the configuration; returns once a worker with it accepts (old workers finish what they hold)."""
        before = self.workers()
        self.write()
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.workers() - before, 10, "nginx to reload")

    def mark_down(self, port):
        self.down.add(port)
        self.reload()

    def mark_up(self, port):
        self.down.discard(port)
        self.reload()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Load:
    """Steady, bounded load: `workers` threads, each sending chat completions through the balancer one after another
    with a pause between, until stopped or `limit` requests in all. Every third worker streams. One connection per
    request: a reload of nginx closes idle keep-alive connections to clients, and that race is not the gateway's."""

    def __init__(self, port, key, workers=6, pause=0.02, limit=20_000):
        self.port, self.key, self.workers, self.pause, self.limit = port, key, workers, pause, limit
        self.results = []  # (started, ended, status, request_id, streamed, usage dict or None, error text)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for n in range(self.workers):
            thread = threading.Thread(target=self.worker, args=(n % 3 == 2,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def count(self):
        with self.lock:
            return len(self.results)

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def worker(self, streamed):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello from the cluster test"}]}
        if streamed:
            body.update(stream=True, stream_options={"include_usage": True})
        payload = json.dumps(body)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        while not self.stopping.is_set():
            with self.lock:
                if len(self.results) >= self.limit:
                    return
            started = time.time()
            status, request_id, usage, error = None, None, None, None
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request("POST", "/v1/chat/completions", body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                status, request_id = response.status, response.getheader("x-request-id")
                if status == 200:
                    usage = self.usage_of(data, streamed)
                    if usage is None:
                        status, error = -2, "reply without usage"
                else:
                    error = data[:300].decode(errors="replace")
            except (OSError, http.client.HTTPException) as exception:
                status, error = -1, repr(exception)
            finally:
                connection.close()
            with self.lock:
                self.results.append((started, time.time(), status, request_id, streamed, usage, error))
            time.sleep(self.pause)

    @staticmethod
    def usage_of(data, streamed):
        if not streamed:
            return json.loads(data).get("usage")
        usage = None
        for line in data.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
        return usage
