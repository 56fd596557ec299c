"""Issue 13: intake keeps answering when clients hold connections open, and a stalled store
gets 503 + Retry-After within ``[webhooks] intake_timeout_seconds``, never a late 200.

The server tests run the real waitress server on 127.0.0.1 and connect from other loopback
addresses (127.0.0.0/8 is all local on Linux) to play several clients."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from connector.config import parse_config
from connector.store import Store, schema
from tests.test_webhooks_support import ENV, config_data, generic_headers
from webhooks.app import create_app
from webhooks.intake import Intake, IntakeUnavailable
from webhooks.providers.base import Item
from webhooks.server import WebhookService


def _service(tmp_path: Path, **server: Any) -> WebhookService:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(url)
    config = parse_config(
        config_data(url) | {"server": {"host": "127.0.0.1", "threads": 4, **server}}, env=ENV
    )
    return WebhookService(config, store, writer_factory=lambda: None, port=0)  # type: ignore[arg-type,return-value]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[WebhookService] = []

    def start(**server: Any) -> WebhookService:
        svc = _service(tmp_path, **server)
        svc.intake.start()
        svc.http.start()  # no workers: the events only need to be stored
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.http.stop()
        svc.intake.close()
        svc.store.close()


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def _post(port: int, source: str, key: str) -> tuple[int, float]:
    """A signed generic lead from ``source``: its status and how long the answer took."""
    body = json.dumps({"id": key, "email": f"{key}@example.com"}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=8, source_address=(source, 0))
    began = time.monotonic()
    try:
        conn.request(
            "POST", "/webhooks/generic", body, generic_headers(body, timestamp=int(time.time()))
        )
        status = conn.getresponse().status
    finally:
        conn.close()
    return status, time.monotonic() - began


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


_HALF_SENT = b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"


def test_a_hundred_idle_or_half_sent_connections_do_not_starve_intake(serve: Any) -> None:
    svc = serve()
    port = svc.http.port
    held = []
    # one client holding 100 connections (the attack), and 200 from 100 other
    # addresses: past waitress' old connection limit of 100
    for i in range(300):
        sock = _connect(port, "127.0.0.1" if i < 100 else f"127.0.1.{i % 100 + 1}")
        if i % 2 or i >= 100:
            with contextlib.suppress(OSError):  # closed at accept: over the per-address cap
                sock.sendall(_HALF_SENT)
        held.append(sock)
    try:
        latencies = []
        for n in range(5):
            status, seconds = _post(port, "127.0.2.1", f"real-{n}")
            assert status == 200
            latencies.append(seconds)
        print(f"signed webhook latency with 300 held connections: max {max(latencies):.3f} s")
        # the one client got at most its 32, the rest were closed at accept
        open_from_one = sum(1 for s in held[:100] if not _closed_by_server(s, within=0.01))
        assert open_from_one <= 32
    finally:
        for sock in held:
            sock.close()


def test_silent_and_trickling_connections_are_closed_after_the_request_timeout(
    serve: Any,
) -> None:
    svc = serve(request_timeout_seconds=1)
    port = svc.http.port
    silent = _connect(port, "127.0.0.1")
    trickle = _connect(port, "127.0.0.1")
    began = time.monotonic()
    closed = False
    for byte in _HALF_SENT * 10:  # a byte every 0.2 s: never silent for a second
        try:
            trickle.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if _closed_by_server(trickle, within=0.2):
            closed = True
            break
        if time.monotonic() - began > 10:
            break
    assert closed, "a request trickling a byte at a time kept its connection for 10 s"
    assert _closed_by_server(silent, within=5)
    # a request that arrives whole is served as before
    assert _post(port, "127.0.0.1", "after")[0] == 200
    silent.close()
    trickle.close()


def test_one_address_holds_at_most_its_share_of_connections(serve: Any) -> None:
    svc = serve(max_connections_per_address=3)
    port = svc.http.port
    mine = [_connect(port, "127.0.0.1") for _ in range(3)]
    time.sleep(0.2)  # accepted
    extra = _connect(port, "127.0.0.1")
    assert _closed_by_server(extra, within=3)
    assert not any(_closed_by_server(s, within=0.05) for s in mine)
    assert _post(port, "127.0.0.3", "other-address")[0] == 200
    for sock in [*mine, extra]:
        sock.close()
    unlimited = serve(max_connections_per_address=0)
    many = [_connect(unlimited.http.port, "127.0.0.1") for _ in range(40)]
    time.sleep(0.2)
    assert not any(_closed_by_server(s, within=0.01) for s in many)
    for sock in many:
        sock.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_locked_store_answers_503_with_retry_after_in_time(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with Store.open(url) as store:
        config = parse_config(config_data(url, intake_timeout_seconds=1), env=ENV)
        intake = Intake(store, wait=config.webhooks.intake_timeout_seconds).start()
        client = create_app(config, store, intake=intake).test_client()
        body = json.dumps({"id": "locked-1", "email": "a@example.com"}).encode()
        locker = store.engine.connect()
        if backend == "sqlite":
            locker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            locker.execute(text("LOCK TABLE webhook_events IN EXCLUSIVE MODE"))
        try:
            began = time.monotonic()
            answer = client.post(
                "/webhooks/generic",
                data=body,
                headers=generic_headers(body, timestamp=int(time.time())),
            )
            took = time.monotonic() - began
        finally:
            locker.rollback()
            locker.close()
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert "deliver again" in answer.json["error"]
        print(f"{backend}: 503 after {took:.2f} s with intake_timeout_seconds = 1")
        assert took < 8, "the store's lock held the request past its bound"
        # nothing half-stored; once the lock is gone the redelivery is stored
        with store.engine.connect() as conn:
            count = select(func.count()).select_from(schema.webhook_events)
            assert conn.execute(count).scalar_one() == 0
        again = client.post(
            "/webhooks/generic",
            data=body,
            headers=generic_headers(body, timestamp=int(time.time())),
        )
        assert again.status_code == 200 and again.json["stored"] == 1
        intake.close()


def test_followers_of_a_stalled_leader_are_bounded_too(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        intake = Intake(store, wait=0.5).start()
        locker = store.engine.connect()
        locker.exec_driver_sql("BEGIN IMMEDIATE")
        outcomes: list[tuple[str, float]] = []

        def deliver(i: int) -> None:
            began = time.monotonic()
            try:
                intake.store_items("generic", [Item(f"k{i}", "{}")], {})
                outcomes.append(("stored", time.monotonic() - began))
            except IntakeUnavailable:
                outcomes.append(("503", time.monotonic() - began))

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        locker.rollback()
        locker.close()
        assert [o for o, _ in outcomes] == ["503"] * 8
        assert max(s for _, s in outcomes) < 6
        # after the stall the next request leads and is stored
        assert intake.store_items("generic", [Item("later", "{}")], {}).created == 1
        intake.close()
