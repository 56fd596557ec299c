"""Which budget scopes a campaign belongs to, and its place in the campaign hierarchy.

A budget for ``channel:paid_social`` covers every campaign of that channel; a budget for
``campaign:<id>`` covers that campaign and all its descendants (Salesforce's "in hierarchy"
figures), so a parent rolls its children up while each campaign's cost is still counted once
per scope. Parent links come from the CRM and may be broken (a parent that was never pulled)
or even cyclic after a bad edit upstream; both are tolerated here rather than crashing a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from connector import model

CampaignKey = tuple[str, str]
"""``(source, external_id)`` of a CRM campaign."""

SCOPE_KINDS: tuple[str, ...] = ("campaign", "channel", "department", "category", "total")
"""Scope kinds, most specific first (the order per-scope rules are looked up in)."""


def scope_kind(scope: str) -> str:
    """``channel`` for ``channel:paid_social``, ``total`` for ``total``."""
    return scope.partition(":")[0]


def scope_name(scope: str) -> str:
    """What follows the colon; empty for ``total``."""
    return scope.partition(":")[2]


class CampaignTree:
    """The campaigns of one snapshot, indexed by key, parent and scope."""

    def __init__(self, campaigns: Iterable[model.Campaign]) -> None:
        self.campaigns: dict[CampaignKey, model.Campaign] = {}
        self._by_id: dict[str, list[CampaignKey]] = defaultdict(list)
        for campaign in campaigns:
            key = (campaign.source, campaign.external_id)
            self.campaigns[key] = campaign
            self._by_id[campaign.external_id].append(key)
        self._children: dict[CampaignKey, list[CampaignKey]] = defaultdict(list)
        for key in self.campaigns:
            parent = self.parent(key)
            if parent is not None:
                self._children[parent].append(key)
        self._members: dict[str, list[CampaignKey]] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self.campaigns

    def __iter__(self) -> Iterator[CampaignKey]:
        return iter(self.campaigns)

    def find(self, campaign_id: str) -> list[CampaignKey]:
        """Keys of campaigns with this external id (one CRM: one key; several CRMs: more)."""
        return list(self._by_id.get(campaign_id, ()))

    def parent(self, key: CampaignKey) -> CampaignKey | None:
        campaign = self.campaigns.get(key)
        if campaign is None or not campaign.parent_id:
            return None
        parent = (key[0], campaign.parent_id)
        return parent if parent in self.campaigns and parent != key else None

    def ancestors(self, key: CampaignKey) -> list[CampaignKey]:
        """Parent, grandparent, ... (stops at a cycle instead of looping)."""
        seen = {key}
        out: list[CampaignKey] = []
        current = self.parent(key)
        while current is not None and current not in seen:
            out.append(current)
            seen.add(current)
            current = self.parent(current)
        return out

    def descendants(self, key: CampaignKey) -> list[CampaignKey]:
        """Children, grandchildren, ... each once, without the campaign itself."""
        seen = {key}
        out: list[CampaignKey] = []
        stack = list(self._children.get(key, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            out.append(current)
            stack.extend(self._children.get(current, ()))
        return out

    def has_children(self, key: CampaignKey) -> bool:
        return bool(self._children.get(key))

    def scopes_of(self, key: CampaignKey) -> list[str]:
        """Every scope whose budget covers the campaign, most specific first: itself, its
        ancestors, its channel, department and category, and the total."""
        campaign = self.campaigns[key]
        scopes = [f"campaign:{key[1]}"]
        scopes.extend(f"campaign:{a[1]}" for a in self.ancestors(key))
        scopes.append(f"channel:{campaign.channel or 'other'}")
        if campaign.department:
            scopes.append(f"department:{campaign.department}")
        if campaign.budget_category:
            scopes.append(f"category:{campaign.budget_category}")
        scopes.append("total")
        return scopes

    def members(self, scope: str) -> list[CampaignKey]:
        """The campaigns a scope's budget covers (each once)."""
        if self._members is None:
            members: dict[str, list[CampaignKey]] = defaultdict(list)
            for key in self.campaigns:
                for s in self.scopes_of(key):
                    if scope_kind(s) != "campaign":
                        members[s].append(key)
            self._members = dict(members)
        if scope_kind(scope) == "campaign":
            out: list[CampaignKey] = []
            for key in self.find(scope_name(scope)):
                out.append(key)
                out.extend(self.descendants(key))
            return out
        return list(self._members.get(scope, ()))
