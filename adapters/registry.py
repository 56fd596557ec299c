"""Which module builds each outside system's source and CRM writer.

One table for everything that needs an adapter by name — ``crm-roi sync``, the webhook
workers, ``doctor`` — imported only when the system is used, so a configuration that enables
a system this version has no adapter for gets one clear message instead of an ImportError.
Factories take ``(config)`` or ``(config, store)``; the store is passed to those that
declare a second positional parameter (Salesforce keeps its write-back ledger there).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from adapters.base import CrmWriter, Source
from connector.config import Config
from connector.config.systems import SYSTEMS
from connector.store import Store

# derived from the systems table: every system's adapter has ``build_source``, and those
# that write to a CRM ``build_writer``
SOURCES: dict[str, str] = {s.name: f"{s.adapter}:build_source" for s in SYSTEMS}
WRITERS: dict[str, str] = {s.name: f"{s.adapter}:build_writer" for s in SYSTEMS if s.writes}


class NotAvailable(RuntimeError):
    """The configuration names a system this version has no adapter for."""


def _factory(table: dict[str, str], system: str, what: str) -> Any:
    spec = table.get(system)
    if spec is None:
        raise NotAvailable(f"this version of crm-roi-connector has no {what} for {system}")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise NotAvailable(
                f"{system} is enabled in the config but this version of crm-roi-connector "
                f"has no {system} adapter yet; set {system}.enabled = false"
            ) from None
        raise
    return getattr(module, attr)


def _call(factory: Any, config: Config, store: Store | None) -> Any:
    positional = [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) >= 2 and store is not None:
        return factory(config, store)
    return factory(config)


def build_source(system: str, config: Config, store: Store | None = None) -> Source:
    return _call(_factory(SOURCES, system, "source"), config, store)


def build_writer(system: str, config: Config, store: Store) -> CrmWriter:
    return _call(_factory(WRITERS, system, "CRM writer"), config, store)


def missing(system: str, *, writer: bool = False) -> str | None:
    """Why ``system`` cannot be used (its source, or its CRM writer), or None when it can."""
    try:
        _factory(WRITERS if writer else SOURCES, system, "CRM writer" if writer else "source")
    except NotAvailable as exc:
        return str(exc)
    return None
