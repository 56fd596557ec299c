"""Salesforce: pull campaigns, members, leads, contacts, opportunities and dated rates; write
the ROI fields back; raise alerts as tasks; turn webhook leads into leads and members.

The sync pipeline calls :func:`build_source` and :func:`build_writer`; the CLI's
``setup-fields`` and ``doctor`` live in :mod:`adapters.salesforce.cli`. One module per job:

- :mod:`.auth` logs in (the four OAuth flows, on the configured host) and again when a
  session expires;
- :mod:`.client` makes REST calls through the shared HTTP behaviour, reads the limit header
  and stops at the configured quota share;
- :mod:`.org`, :mod:`.records`, :mod:`.streams`, :mod:`.source` read the org incrementally;
- :mod:`.writeback` writes the ROI fields, only what changed, diffed against the store's
  write-back ledger (:mod:`connector.store.writeback_ledger`, shared by every CRM);
- :mod:`.tasks`, :mod:`.leads`, :mod:`.fields` do alerts, inbound leads and field setup.

The API's gotchas and how each is handled are listed in ``BEHAVIOR.md`` next to this file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import requests

from adapters.salesforce.auth import Credentials, SalesforceAuth
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.org import Org
from adapters.salesforce.org_meaning import CampaignMeaning, LeadLifecycle
from adapters.salesforce.records import SOURCE
from adapters.salesforce.source import SalesforceSource, SourceSettings
from adapters.salesforce.writer import SalesforceWriter
from connector import model
from connector.config import Config
from connector.store import Store
from connector.store.writeback_ledger import WritebackLedger

__all__ = [
    "SOURCE",
    "SalesforceSource",
    "SalesforceWriter",
    "build_client",
    "build_source",
    "build_writer",
]


def build_client(
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    session: requests.Session | None = None,
) -> SalesforceClient:
    """A client for the configured org (logs in on its first call, not here)."""
    section = config.salesforce
    auth = SalesforceAuth(
        Credentials.from_config(config), timeout=section.timeout_seconds, sleep=sleep
    )
    return SalesforceClient(
        auth,
        api_version=section.api_version,
        timeout=section.timeout_seconds,
        quota_stop_share=section.quota_stop_share,
        sleep=sleep,
        rng=rng,
        session=session,
    )


def _known_ids(store: Store) -> Callable[[type[model.Record], str | None], set[str]]:
    def known(record_type: type[model.Record], kind: str | None) -> set[str]:
        return {
            record.external_id
            for record in store.iter_records(record_type, source=SOURCE)
            if kind is None or getattr(record, "kind", None) == kind
        }

    return known


def build_source(
    config: Config,
    store: Store | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> SalesforceSource:
    """The Salesforce source of ``config``; ``store`` lets full runs find hard deletes."""
    section = config.salesforce
    client = build_client(config, sleep=sleep, rng=rng)
    return SalesforceSource(
        client,
        Org(client, fallback_currency=config.connector.reporting_currency),
        SourceSettings(
            ad_campaign_id_field=section.ad_campaign_id_field,
            responded_field=section.responded_field,
            meaning=CampaignMeaning.from_settings(section),
            lifecycle=LeadLifecycle.from_settings(section),
        ),
        known_ids=_known_ids(store) if store is not None else None,
    )


def build_writer(
    config: Config,
    store: Store,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> SalesforceWriter:
    """The Salesforce writer of ``config``; write-back state and task ids live in ``store``."""
    return SalesforceWriter(
        build_client(config, sleep=sleep, rng=rng),
        WritebackLedger(store, SOURCE),
        lead_source=config.webhooks.lead_source,
    )
