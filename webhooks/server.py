"""The webhook side of ``crm-roi serve``: waitress serving the Flask app, the intake and the
worker pool, started together and stopped together, in order.

Why waitress in-process rather than gunicorn's pre-fork master: the HTTP threads (which
commit their events together, one fsync per batch: what makes an fsync per 200 affordable
on SQLite, see :mod:`webhooks.intake`), the webhook workers and the scheduler share one
process and one store, and stop on one SIGTERM; several gunicorn worker processes would
contend for SQLite's one write lock and would fork a process that already runs threads.
Waitress is a production WSGI server in pure Python, so ``serve`` also runs where gunicorn
cannot (Windows).

Stopping (SIGTERM): stop accepting connections, let the requests in flight finish (each
waits for its commit), close the intake once what is queued is written, then let each worker
finish the event in hand. Anything not finished is still in the store, pending.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer

from connector.config import Config
from connector.store import Store
from webhooks.app import create_app
from webhooks.guarded_server import create_guarded_server
from webhooks.intake import Intake
from webhooks.worker import WorkerPool, Workers, WriterFactory, lead_writer

log = logging.getLogger(__name__)

_LOOP_TIMEOUT = 0.5


class HttpServer:
    """A waitress server on its own thread that stops gracefully from any thread."""

    def __init__(
        self,
        wsgi_app: Any,
        *,
        host: str,
        port: int,
        threads: int,
        max_body: int,
        request_timeout: int = 10,
        per_address: int = 32,
        max_connections: int = 1000,
    ) -> None:
        self._map: dict[int, Any] = {}
        self.server = create_guarded_server(
            wsgi_app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            max_body=max_body,
            request_timeout=request_timeout,
            per_address=per_address,
            max_connections=max_connections,
        )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # waitress warns on every request that waits for a free thread: under a burst that is
        # a log line per request, costing CPU exactly when it is short. Threads busy is normal.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    @property
    def listeners(self) -> list[BaseWSGIServer]:
        return [d for d in list(self._map.values()) if isinstance(d, BaseWSGIServer)]

    @property
    def port(self) -> int:
        return int(self.listeners[0].effective_port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=_LOOP_TIMEOUT, map=self._map, use_poll=True, count=1)

    def stop(self, drain: float = 10.0) -> None:
        """Close the listening sockets, finish the requests in flight, stop the threads."""
        if self._thread is None:
            return
        listeners = self.listeners
        dispatcher = self.server.task_dispatcher
        self._stopping.set()
        self._thread.join(2 * _LOOP_TIMEOUT + 1)
        for listener in listeners:
            wasyncore.dispatcher.close(listener)  # the socket only; the trigger stays
        deadline = time.monotonic() + drain
        # The loop must keep running to write the answers of requests still being handled.
        while time.monotonic() < deadline and (dispatcher.active_count or dispatcher.queue):
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        for _ in range(10):  # flush what the last tasks wrote
            wasyncore.loop(timeout=0.02, map=self._map, use_poll=True, count=1)
        dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self._map)
        self._thread = None


class WebhookService:
    """Intake, app, HTTP server and worker pool of one ``serve`` process."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        writer_factory: WriterFactory | None = None,
        workers: Workers | None = None,
        port: int | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.workers = workers or Workers(config, store)
        self.pool = WorkerPool(
            self.workers,
            writer_factory or (lambda: lead_writer(config, store)),
            threads=config.server.workers,
        )
        self.intake = Intake(
            store,
            durable=config.webhooks.durable_intake,
            wait=config.webhooks.intake_timeout_seconds,
            on_stored=self.pool.wake,
        )
        self.app = create_app(config, store, intake=self.intake)
        self.http = HttpServer(
            self.app,
            host=config.server.host,
            port=config.server.port if port is None else port,
            threads=config.server.threads,
            max_body=config.webhooks.max_body_bytes,
            request_timeout=config.server.request_timeout_seconds,
            per_address=config.server.max_connections_per_address,
        )

    def start(self) -> None:
        self.intake.start()
        self.pool.start()
        self.http.start()
        log.info(
            "webhooks listening on http://%s:%d (%d HTTP threads, %d webhook workers)",
            self.config.server.host,
            self.http.port,
            self.config.server.threads,
            self.config.server.workers,
        )

    def stop(self) -> None:
        self.http.stop()
        self.intake.close()
        self.pool.stop()
        log.info("webhooks stopped")
