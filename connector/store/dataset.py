"""Everything the computations read, loaded from the store in one pass.

Attribution, costs and budgets need the whole graph at once (a journey spans persons,
touches and opportunities), so the live records are read once into plain lists here and the
computations stay free of SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector import model
from connector.store import Store


@dataclass
class Dataset:
    campaigns: list[model.Campaign] = field(default_factory=list)
    ad_campaigns: list[model.AdCampaign] = field(default_factory=list)
    spend: list[model.AdSpendDay] = field(default_factory=list)
    expenses: list[model.Expense] = field(default_factory=list)
    persons: list[model.Person] = field(default_factory=list)
    touchpoints: list[model.Touchpoint] = field(default_factory=list)
    opportunities: list[model.Opportunity] = field(default_factory=list)
    contact_roles: list[model.ContactRole] = field(default_factory=list)
    budgets: list[model.Budget] = field(default_factory=list)
    fx_rates: list[model.FxRate] = field(default_factory=list)

    @classmethod
    def load(cls, store: Store) -> Dataset:
        """Read every live record (deleted upstream = not part of any figure)."""
        return cls(
            campaigns=list(store.iter_records(model.Campaign)),
            ad_campaigns=list(store.iter_records(model.AdCampaign)),
            spend=list(store.iter_records(model.AdSpendDay)),
            expenses=list(store.iter_records(model.Expense)),
            persons=list(store.iter_records(model.Person)),
            touchpoints=list(store.iter_records(model.Touchpoint)),
            opportunities=list(store.iter_records(model.Opportunity)),
            contact_roles=list(store.iter_records(model.ContactRole)),
            budgets=list(store.iter_records(model.Budget)),
            fx_rates=list(store.iter_records(model.FxRate)),
        )

    @classmethod
    def from_records(cls, records: list[model.Record]) -> Dataset:
        """Build from in-memory records (tests, the demo before it is stored)."""
        data = cls()
        buckets = {
            model.Campaign: data.campaigns,
            model.AdCampaign: data.ad_campaigns,
            model.AdSpendDay: data.spend,
            model.Expense: data.expenses,
            model.Person: data.persons,
            model.Touchpoint: data.touchpoints,
            model.Opportunity: data.opportunities,
            model.ContactRole: data.contact_roles,
            model.Budget: data.budgets,
            model.FxRate: data.fx_rates,
        }
        for record in records:
            if record.deleted_at is None:
                buckets[type(record)].append(record)  # type: ignore[attr-defined]
        return data
