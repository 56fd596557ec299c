"""The ad platforms in the command line: ``doctor`` checks and ``crm-roi ad-campaigns``.

``doctor`` makes one cheap call per configured ad account (Google's ``customer`` row, Meta's
``act_`` node, LinkedIn's ``adAccounts`` entity) and turns any refusal into what is wrong
(an expired token, a missing or unapproved developer token, a wrong account id, a sunset API
version), then lists ad campaigns whose spend maps to no CRM campaign, largest first: that
spend is in no campaign's cost until someone maps it (DESIGN section 6).

``crm-roi ad-campaigns`` shows every ad campaign in the store with its spend and the CRM
campaign it maps to (and by which rule), which is what an admin needs while writing
``[[mapping]]`` rows or a naming rule.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import click

from adapters import registry
from connector import model
from connector.config import Config, ConfigError
from connector.roi.mapping import CampaignMapper, ExplicitMapping, MappedTo
from connector.store import Store
from connector.store.dataset import Dataset

log = logging.getLogger(__name__)

SHOWN_UNMAPPED = 20


def build_sources(config: Config) -> list[Any]:
    """A source per enabled ad platform (built as ``crm-roi sync`` builds them)."""
    return [registry.build_source(name, config) for name in config.enabled_ad_sources]


# ---------------------------------------------------------------------------------------------
# Mapping status from the store


@dataclass
class AdCampaignStatus:
    source: str
    campaign_id: str
    account_id: str
    name: str
    status: str | None
    spend: dict[str, Decimal] = field(default_factory=dict)  # by currency
    mapped: MappedTo | None = None

    def spend_text(self) -> str:
        if not self.spend:
            return "no spend"
        return ", ".join(
            f"{amount:,.2f} {currency}" for currency, amount in sorted(self.spend.items())
        )

    @property
    def sort_key(self) -> tuple[Decimal, str, str]:
        return (-sum(self.spend.values(), Decimal(0)), self.source, self.campaign_id)


def mapping_status(store: Store, config: Config) -> list[AdCampaignStatus]:
    """Every ad campaign in the store (or with spend) and where its spend goes."""
    data = Dataset(
        campaigns=list(store.iter_records(model.Campaign)),
        ad_campaigns=list(store.iter_records(model.AdCampaign)),
        spend=list(store.iter_records(model.AdSpendDay)),
    )
    mapper = CampaignMapper(
        data.campaigns,
        [ExplicitMapping(m.ad_source, m.ad_campaign_id, m.crm_campaign_id) for m in config.mapping],
        config.mapping_rules.name_regex or None,
    )
    rows: dict[tuple[str, str], AdCampaignStatus] = {}
    for ad in data.ad_campaigns:
        rows[(ad.source, ad.external_id)] = AdCampaignStatus(
            ad.source, ad.external_id, ad.account_id, ad.name, ad.status
        )
    totals: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for day in data.spend:
        key = (day.source, day.ad_campaign_id)
        totals[key][day.currency] += day.spend
        if key not in rows:  # spend of a campaign the campaign list did not return
            rows[key] = AdCampaignStatus(
                day.source, day.ad_campaign_id, day.account_id, day.ad_campaign_id, None
            )
    for key, row in rows.items():
        row.spend = dict(totals.get(key, {}))
        row.mapped = mapper.resolve(row.source, row.campaign_id, row.name)
    return sorted(rows.values(), key=lambda r: r.sort_key)


def unmapped_checks(config: Config) -> list[tuple[bool, str]]:
    """Doctor lines for ad spend that maps to no CRM campaign (nothing if the store is not
    ready: the core checks already say so)."""
    with Store.if_ready(config.connector.database_url) as store:
        if store is None:
            return []
        try:
            rows = [r for r in mapping_status(store, config) if r.spend]
        except Exception as exc:  # doctor reports, never crashes
            return [(False, f"ad campaign mapping: cannot read the store: {exc}")]
    if not rows:
        return []
    unmapped = [r for r in rows if r.mapped is None]
    if not unmapped:
        return [(True, f"all {len(rows)} ad campaigns with spend map to a CRM campaign")]
    # A warning, not a failure: unmapped spend is reported, never dropped, and a test
    # campaign nobody maps must not make doctor fail forever.
    checks = [
        (
            True,
            f"warning: {len(unmapped)} of {len(rows)} ad campaigns with spend map to no CRM "
            "campaign; "
            "map them with a [[mapping]] row, the CRM campaign's ad-id field or "
            "[mapping_rules] name_regex (their spend is reported as unmapped)",
        )
    ]
    for row in unmapped[:SHOWN_UNMAPPED]:
        checks.append(
            (
                True,
                f"warning: unmapped: {row.source} campaign {row.campaign_id} {row.name!r} "
                f"(account {row.account_id}): {row.spend_text()}",
            )
        )
    if len(unmapped) > SHOWN_UNMAPPED:
        checks.append(
            (
                True,
                f"warning: ... and {len(unmapped) - SHOWN_UNMAPPED} more "
                "(crm-roi ad-campaigns --unmapped)",
            )
        )
    return checks


# ---------------------------------------------------------------------------------------------
# The CLI hooks


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """One cheap call per enabled ad account, then the unmapped ad spend in the store."""
    checks: list[tuple[bool, str]] = []
    for name in config.enabled_ad_sources:
        try:
            source = registry.build_source(name, config)
        except ConfigError as exc:
            checks.append((False, str(exc)))
            continue
        try:
            checks.extend(source.check())
        except Exception as exc:  # doctor names every failure, it never crashes
            checks.append((False, f"{name}: {exc}"))
        finally:
            source.close()
    checks.extend(unmapped_checks(config))
    return checks


def register(cli: click.Group) -> None:
    @cli.command("ad-campaigns")
    @click.option(
        "--unmapped", is_flag=True, help="only campaigns whose spend maps to no CRM campaign"
    )
    @click.pass_obj
    def ad_campaigns(app: Any, unmapped: bool) -> None:
        """List ad campaigns in the store with their spend and the CRM campaign each maps to.

        \b
        Example:
          crm-roi ad-campaigns --unmapped
        """
        from rich.table import Table

        config = app.config(resolve_secrets=False)
        with Store.open(config.connector.database_url, create=False) as store:
            rows = mapping_status(store, config)
        if unmapped:
            rows = [r for r in rows if r.mapped is None]
        table = Table(title="Ad campaigns" + (" (unmapped)" if unmapped else ""))
        for column in (
            "source",
            "account",
            "campaign",
            "name",
            "status",
            "spend",
            "CRM campaign",
            "rule",
        ):
            table.add_column(column, justify="right" if column == "spend" else "left")
        for row in rows:
            table.add_row(
                row.source,
                row.account_id,
                row.campaign_id,
                row.name,
                row.status or "",
                row.spend_text(),
                row.mapped.crm_campaign_id if row.mapped else "-",
                row.mapped.rule if row.mapped else "unmapped",
            )
        app.out.print(table)
