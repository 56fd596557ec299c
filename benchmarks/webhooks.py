"""Webhook intake under load: ``crm-roi serve`` against a bare Flask endpoint, same server.

    python -m benchmarks.webhooks [--requests 9000] [--concurrency 16] [--threads 16]

Both servers run as subprocesses on 127.0.0.1 with the same waitress settings (``[server]
threads``): ``crm-roi serve`` with a temporary SQLite store, taking signed Meta lead
notifications (each verified, parsed and committed before its 200, fsynced by default),
and a Flask app whose only route answers 200. A load generator sends the same number of
signed requests to each over keep-alive connections and prints requests/s, p50 and p99
latency and the ratio serve/bare. Every 200 from ``serve`` is then checked in the store.

The load is bounded: ``--requests`` per server, ``--max-seconds`` per run, loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
ROUNDS = 3
SECRET = "bench-app-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def meta_body(n: int) -> bytes:
    value = {
        "leadgen_id": str(10**14 + n),
        "page_id": "153125381133",
        "form_id": "12312312312",
        "adgroup_id": "12312312312",
        "ad_id": "12312312312",
        "created_time": 1438292065,
    }
    body = {
        "object": "page",
        "entry": [
            {
                "id": "153125381133",
                "time": 1438292065,
                "changes": [{"field": "leadgen", "value": value}],
            }
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed(n: int) -> tuple[bytes, dict[str, str]]:
    body = meta_body(n)
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


@dataclass
class Result:
    name: str
    ok: int
    failed: int
    seconds: float
    latencies: list[float]

    def add(self, other: Result) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<14} {self.rate:8.0f} req/s   p50 {self.percentile(0.50):6.2f} ms   "
            f"p99 {self.percentile(0.99):6.2f} ms   ({self.ok} ok, {self.failed} failed)"
        )


def load(
    name: str, port: int, first: int, count: int, concurrency: int, max_seconds: float
) -> Result:
    """``count`` signed requests over ``concurrency`` keep-alive connections."""
    payloads = [signed(first + i) for i in range(count)]
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    next_index = iter(range(count))
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        mine: list[float] = []
        bad = 0
        for i in next_index:
            if time.monotonic() > deadline:
                break
            body, headers = payloads[i]
            started = time.perf_counter()
            try:
                conn.request("POST", "/webhooks/meta", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    mine.append(time.perf_counter() - started)
                else:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
        conn.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result(name, len(latencies), failures[0], time.perf_counter() - started, latencies)


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start listening in time")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bare_server(port: int, threads: int, max_body: int) -> None:
    """Run the yardstick: a Flask route that only answers 200, on serve's HTTP server."""
    import signal

    from flask import Flask

    from webhooks.server import HttpServer

    app = Flask("bare")

    @app.post("/webhooks/<name>")
    def ok(name: str) -> tuple[str, int]:
        return "", 200

    server = HttpServer(app, host=HOST, port=port, threads=threads, max_body=max_body)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    while not done.wait(1.0):
        pass
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=9000, help="requests per server")
    parser.add_argument("--concurrency", type=int, default=16, help="client connections")
    parser.add_argument("--threads", type=int, default=16, help="[server] threads of both")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time limit per run")
    parser.add_argument("--no-fsync", action="store_true", help="[webhooks] durable_intake = false")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    max_body = 1_048_576
    if args.bare_server:
        bare_server(args.bare_server, args.threads, max_body)
        return 0

    work = Path(tempfile.mkdtemp(prefix="crm-roi-bench-"))
    db = work / "bench.db"
    serve_port, bare_port = free_port(), free_port()
    (work / "config.toml").write_text(
        f'[connector]\ndatabase_url = "sqlite:///{db}"\nlog_level = "WARNING"\n'
        f'[meta_ads]\napp_secret_env = "BENCH_META_SECRET"\n'
        f"[webhooks]\nmax_body_bytes = {max_body}\n"
        f"durable_intake = {'false' if args.no_fsync else 'true'}\n"
        f'[server]\nhost = "{HOST}"\nport = {serve_port}\nthreads = {args.threads}\n'
        f"[schedule]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {**os.environ, "BENCH_META_SECRET": SECRET, "CRM_ROI_CONFIG": str(work / "config.toml")}
    crm_roi = Path(sys.executable).parent / "crm-roi"
    serve = subprocess.Popen([str(crm_roi), "-q", "serve"], env=env, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.webhooks",
            "--bare-server",
            str(bare_port),
            "--threads",
            str(args.threads),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(serve_port, serve)
        wait_ready(bare_port, bare)
        print(
            f"{args.requests} signed Meta webhooks per server, {args.concurrency} connections, "
            f"{args.threads} server threads, {os.cpu_count()} cores, "
            f"intake {'without fsync' if args.no_fsync else 'fsynced (durable_intake)'}"
        )
        warm = min(200, args.requests)
        load("warm-up", bare_port, 0, warm, args.concurrency, args.max_seconds)
        load("warm-up", serve_port, 10**9, warm, args.concurrency, args.max_seconds)
        # Alternating rounds, so that whatever else the machine does weighs on both alike.
        bare_result = Result("bare flask", 0, 0, 0.0, [])
        serve_result = Result("crm-roi serve", 0, 0, 0.0, [])
        per_round = args.requests // ROUNDS
        round_ratios = []
        for r in range(ROUNDS):
            first = r * per_round
            rates = []
            for result, port in ((bare_result, bare_port), (serve_result, serve_port)):
                part = load(result.name, port, first, per_round, args.concurrency, args.max_seconds)
                result.add(part)
                rates.append(part.rate)
            round_ratios.append(rates[1] / rates[0] if rates[0] else 0.0)
    finally:
        stop(serve)
        stop(bare)
    print(bare_result.line())
    print(serve_result.line())
    ratio = serve_result.rate / bare_result.rate if bare_result.rate else 0.0
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE provider = 'meta' AND dedup_key < ?",
            (str(10**14 + per_round * ROUNDS),),
        ).fetchone()[0]
    p99 = serve_result.percentile(0.99)
    print(
        f"ratio serve/bare {ratio:.2f} (target >= 0.5), serve p99 {p99:.1f} ms (target <= 50); "
        f"{stored} of {serve_result.ok} answered 200 are in the store"
    )
    print(
        f"mean serve latency {statistics.fmean(serve_result.latencies) * 1000:.2f} ms; "
        f"ratio per round {' '.join(f'{r:.2f}' for r in round_ratios)}"
    )
    return 0 if stored == serve_result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
