"""What this org is like: its currency setup and the fields the API user can see.

Discovered once per run (a few calls) so the queries never name a field that is not there:
SOQL fails the whole query with ``INVALID_FIELD`` for one unknown or hidden column, and
field-level security can hide even standard fields (``BudgetedCost``) from an API user.

- **Multi-currency** orgs have ``CurrencyIsoCode`` on their objects; their corporate currency
  is ``CurrencyType WHERE IsCorporate = true``, which ``DatedConversionRate`` quotes against.
- **Single-currency** orgs have no ``CurrencyIsoCode`` (selecting it fails); their amounts are
  in ``Organization.DefaultCurrencyIsoCode``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.http import HttpError
from adapters.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)

ALWAYS_PRESENT = frozenset({"Id"})


@dataclass(frozen=True)
class OrgProfile:
    multi_currency: bool
    currency: str
    """The corporate currency (multi-currency) or the org's only currency."""


class Org:
    """Lazily discovered facts about the org, cached for the client's life."""

    def __init__(self, client: SalesforceClient, *, fallback_currency: str) -> None:
        self.client = client
        self.fallback_currency = fallback_currency
        self._profile: OrgProfile | None = None
        self._warned: set[str] = set()

    def profile(self) -> OrgProfile:
        if self._profile is None:
            multi = "CurrencyIsoCode" in self.client.field_map("Opportunity")
            if multi:
                rows = self.client.query(
                    "SELECT IsoCode FROM CurrencyType WHERE IsCorporate = true"
                )
                currency = rows[0]["IsoCode"] if rows else self.fallback_currency
            else:
                currency = self._single_currency()
            self._profile = OrgProfile(multi_currency=multi, currency=currency)
            log.info(
                "Salesforce: %s org, %s currency %s",
                "multi-currency" if multi else "single-currency",
                "corporate" if multi else "org",
                currency,
            )
        return self._profile

    def _single_currency(self) -> str:
        try:
            rows = self.client.query("SELECT DefaultCurrencyIsoCode FROM Organization")
        except HttpError as exc:
            log.warning(
                "Salesforce: cannot read the org's currency (%s); assuming %s",
                exc,
                self.fallback_currency,
            )
            return self.fallback_currency
        return (rows[0].get("DefaultCurrencyIsoCode") if rows else None) or self.fallback_currency

    def select(
        self, sobject: str, wanted: Sequence[str], *, quiet: Iterable[str] = ()
    ) -> list[str]:
        """``wanted`` minus the fields the API user cannot see (``Owner.Name`` needs
        ``OwnerId``); a missing field is logged once unless it is in ``quiet`` (expected to be
        absent in some orgs, such as ``CurrencyIsoCode``)."""
        visible = self.client.field_map(sobject)
        quiet_set = set(quiet)
        chosen: list[str] = []
        for name in wanted:
            base = name.split(".", 1)[0] + "Id" if "." in name else name
            if name in ALWAYS_PRESENT or base in visible:
                chosen.append(name)
                continue
            key = f"{sobject}.{name}"
            if name not in quiet_set and key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "Salesforce: %s is missing or hidden from the API user (field-level "
                    "security); it is not read",
                    key,
                )
        return chosen
