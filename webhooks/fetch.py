"""Reading the leads that a notification only refers to: the bounds every such call shares,
and one reader per platform, built when first needed.

Each platform's reader lives in its provider module (``reader(config, make_client)``: Meta's
Graph API lead, LinkedIn's form response and form), so a new platform is one file. The calls
are bounded tighter than a sync's (3 attempts, short timeouts): a lead that cannot be read now
is retried by the worker's own backoff, without holding a worker for minutes. Tokens travel
only in the query or the Authorization header and never reach a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from adapters.http import HttpClient
from connector.config import Config

_TIMEOUT = (5.0, 30.0)


class PlatformLeads:
    """The :class:`webhooks.providers.base.LeadFetcher`: each provider's reader, built once."""

    def __init__(
        self,
        config: Config,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.session = session
        self.sleep = sleep
        self._readers: dict[str, Any] = {}
        self._clients: list[HttpClient] = []
        self._lock = threading.Lock()

    def client(self, service: str, base_url: str, **kwargs: Any) -> HttpClient:
        """An HTTP client with the bounds of a lead read (what readers are built with)."""
        client = HttpClient(
            service,
            base_url,
            timeout=_TIMEOUT,
            max_attempts=3,
            max_wait=60.0,
            session=self.session,
            sleep=self.sleep,
            **kwargs,
        )
        self._clients.append(client)
        return client

    def of(self, provider: Any) -> Any:
        """``provider``'s reader (its ``reader(config, make_client)``), built on first use."""
        with self._lock:
            reader = self._readers.get(provider.name)
            if reader is None:
                reader = provider.reader(self.config, self.client)
                self._readers[provider.name] = reader
        return reader

    def close(self) -> None:
        if self.session is None:
            for client in self._clients:
                client.close()
