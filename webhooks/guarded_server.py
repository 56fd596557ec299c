"""Waitress, bounded against clients that hold connections open without finishing a request.

Waitress reads requests asynchronously, so a slow client costs no thread, but every open
connection counts against ``connection_limit``; past it waitress stops accepting, and a
hundred idle or half-sent connections (slowloris) used to keep real webhooks out for the
60 s of its default timeout. Three bounds keep intake answering:

- a connection that has sent nothing for ``request_timeout`` seconds is closed (waitress'
  ``channel_timeout``, checked every second instead of every 30);
- a request must arrive whole within ``request_timeout`` seconds of its first byte, however
  slowly it trickles (waitress only measures silence);
- one address holds at most ``per_address`` connections; more are closed at accept. Behind a
  proxy every connection comes from the proxy's address: raise or disable the cap there
  (``[server] max_connections_per_address = 0``) and let the proxy bound its clients.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger(__name__)

# file descriptors kept free for the store, the log files and the CRM clients
_SPARE_FDS = 64


class _Channel(HTTPChannel):
    """Remembers when the request it is reading began."""

    request_began: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.time()
        done = super().received(data)
        if self.request is None:  # every request in ``data`` arrived whole
            self.request_began = None
        return done


class GuardedServer(TcpWSGIServer):
    """A waitress TCP listener with the bounds of the module docstring."""

    channel_class = _Channel

    def __init__(self, *args: Any, per_address: int, **kwargs: Any) -> None:
        self.per_address = per_address
        self.refused = 0  # connections closed at accept since the last maintenance
        super().__init__(*args, **kwargs)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:
            return  # the client went away before we got to it
        addr = self.fix_addr(addr)
        if self.per_address and self._open_from(addr[0]) >= self.per_address:
            self.refused += 1
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _open_from(self, host: str) -> int:
        return sum(1 for c in self.active_channels.values() if c.addr and c.addr[0] == host)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # silent for channel_timeout: closed
        cutoff = now - self.adj.channel_timeout
        for channel in self.active_channels.values():
            began = getattr(channel, "request_began", None)
            if began is not None and began < cutoff and not channel.requests:
                channel.will_close = True
        if self.refused:
            top = Counter(c.addr[0] for c in self.active_channels.values() if c.addr)
            log.warning(
                "refused %d connection(s) over the limit of %d per address (most open: %s)",
                self.refused,
                self.per_address,
                ", ".join(f"{h} {n}" for h, n in top.most_common(3)),
            )
            self.refused = 0


def connection_limit(wanted: int) -> int:
    """``wanted``, or what the process' file-descriptor limit leaves room for."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - _SPARE_FDS))


def create_guarded_server(
    app: Any,
    *,
    map: dict[int, Any],
    host: str,
    port: int,
    threads: int,
    max_body: int,
    request_timeout: int,
    per_address: int,
    max_connections: int,
) -> GuardedServer:
    """One listener per address ``host`` resolves to (as waitress' ``create_server``), all
    sharing ``map`` and one thread pool; returns the last."""
    adj = Adjustments(
        host=host,
        port=port,
        threads=threads,
        # waitress answers 413 itself past this (Flask's own limit is max_body)
        max_request_body_size=max_body + 1,
        connection_limit=connection_limit(max_connections),
        channel_timeout=request_timeout,
        cleanup_interval=1,
        asyncore_use_poll=True,
        ident="crm-roi",
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server: GuardedServer | None = None
    for sockinfo in adj.listen:
        server = GuardedServer(
            app, map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo, per_address=per_address
        )
    assert server is not None, "waitress resolved the host to no address"
    return server
