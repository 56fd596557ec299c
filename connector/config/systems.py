"""The outside systems, declared once.

Each row names a system as its ``config.toml`` section and registry key, says whether it is a
CRM (campaigns, people, deals; write-back) or an ad platform (daily spend), and where its
adapter lives. The config's list of sections, the ``AdSource``/``WebhookCrm`` choices, the
adapter registry (:mod:`adapters.registry`) and the adapters' command modules of the CLI are
derived from this table; a test holds ``config.example.toml`` to it. A new CRM or ad platform
is a row here plus its package under ``adapters/`` (and its section class in config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["crm", "ads"]


@dataclass(frozen=True)
class System:
    name: str  # the config section and registry key: "salesforce", "google_ads"
    kind: Kind
    label: str  # how people write it: "Salesforce", "Google Ads"
    adapter: str  # the adapter's module or package: "adapters.salesforce"
    writes: bool = False  # has a CRM writer (write-back, alert tasks, webhook leads)


SYSTEMS: tuple[System, ...] = (
    System("salesforce", "crm", "Salesforce", "adapters.salesforce", writes=True),
    System("hubspot", "crm", "HubSpot", "adapters.hubspot", writes=True),
    System("zoho", "crm", "Zoho CRM", "adapters.zoho"),
    System("fxiaoke", "crm", "Fxiaoke", "adapters.fxiaoke"),
    System("google_ads", "ads", "Google Ads", "adapters.google_ads"),
    System("meta_ads", "ads", "Meta", "adapters.meta_ads"),
    System("linkedin_ads", "ads", "LinkedIn", "adapters.linkedin_ads"),
)


def names(kind: Kind | None = None) -> tuple[str, ...]:
    """The systems' names in table order, or only those of ``kind``."""
    return tuple(s.name for s in SYSTEMS if kind is None or s.kind == kind)


def by_name(name: str) -> System:
    for system in SYSTEMS:
        if system.name == name:
            return system
    raise KeyError(name)
