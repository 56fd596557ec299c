"""What an org's own fields mean for the connector: a campaign's department and budget
category, and how far a lead got (MQL, SQL).

Salesforce has no standard Campaign field for either attribute, and no standard "MQL" on a
Lead: every org models them its own way. ``[salesforce]`` says which fields and values carry
them (``department_field``, ``category_field``, ``campaign_rules``; ``mql_statuses``,
``sql_statuses``, ``mql_date_field``, ``sql_date_field``). Without that, department and
category budgets stay empty and only a converted lead counts as sales-qualified: ``doctor``
says which mapping is in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from adapters.salesforce.client import parse_datetime
from connector.config import CampaignRule, SalesforceSection

# Values a category field holds in real orgs, and in Chinese ones.
_CATEGORY_WORDS: Mapping[str, str] = {
    "strategic": "strategic",
    "strategy": "strategic",
    "战略": "strategic",
    "战略型": "strategic",
    "growth": "growth",
    "增长": "growth",
    "增长型": "growth",
    "retention": "retention",
    "retain": "retention",
    "维系": "retention",
    "维系型": "retention",
}


def category_value(value: Any) -> str | None:
    """``"Growth"``, ``"growth "``, ``"增长型"`` -> ``"growth"``; anything else -> None."""
    if not isinstance(value, str):
        return None
    return _CATEGORY_WORDS.get(value.strip().casefold())


@dataclass(frozen=True)
class CampaignMeaning:
    """Department and budget category of a Campaign row: its own field first, then the
    first rule that matches its Type or name and gives a value."""

    department_field: str = ""
    category_field: str = ""
    rules: Sequence[CampaignRule] = ()

    @classmethod
    def from_settings(cls, s: SalesforceSection) -> CampaignMeaning:
        return cls(s.department_field, s.category_field, tuple(s.campaign_rules))

    @property
    def fields(self) -> list[str]:
        return [f for f in (self.department_field, self.category_field) if f]

    def department(self, row: Mapping[str, Any]) -> str | None:
        own = row.get(self.department_field) if self.department_field else None
        if isinstance(own, str) and own.strip():
            return own.strip()
        return self._by_rule(row, "department")

    def category(self, row: Mapping[str, Any]) -> str | None:
        own = category_value(row.get(self.category_field)) if self.category_field else None
        return own or self._by_rule(row, "category")

    def _by_rule(self, row: Mapping[str, Any], attribute: str) -> str | None:
        for rule in self.rules:
            value = getattr(rule, attribute)
            if value and rule.matches(row.get("Type"), row.get("Name")):
                return str(value)
        return None

    def describe(self) -> str:
        parts = []
        for what, field in (
            ("department", self.department_field),
            ("category", self.category_field),
        ):
            parts.append(f"{what} from Campaign.{field}" if field else f"no {what} field")
        if self.rules:
            parts.append(f"{len(self.rules)} campaign rule(s)")
        return ", ".join(parts)


@dataclass(frozen=True)
class LeadStage:
    stage: str
    mql_at: datetime | None = None
    sql_at: datetime | None = None


@dataclass(frozen=True)
class LeadLifecycle:
    """How far a Lead got, from the org's own signals: converted (always at least SQL, with
    an opportunity "opportunity"), ``Status`` values, and date or checkbox fields."""

    mql_statuses: frozenset[str] = frozenset()
    sql_statuses: frozenset[str] = frozenset()
    mql_date_field: str = ""
    sql_date_field: str = ""

    @classmethod
    def from_settings(cls, s: SalesforceSection) -> LeadLifecycle:
        return cls(
            frozenset(v.casefold() for v in s.mql_statuses),
            frozenset(v.casefold() for v in s.sql_statuses),
            s.mql_date_field,
            s.sql_date_field,
        )

    @property
    def fields(self) -> list[str]:
        return [f for f in (self.mql_date_field, self.sql_date_field) if f]

    @property
    def configured(self) -> bool:
        return bool(self.mql_statuses or self.sql_statuses or self.fields)

    def stage(self, row: Mapping[str, Any]) -> LeadStage:
        status = str(row.get("Status") or "").casefold()
        mql_hit, mql_at = _signal(row.get(self.mql_date_field) if self.mql_date_field else None)
        sql_hit, sql_at = _signal(row.get(self.sql_date_field) if self.sql_date_field else None)
        if row.get("IsConverted"):
            # a converted lead was accepted by sales; with a deal it reached "opportunity"
            stage = "opportunity" if row.get("ConvertedOpportunityId") else "sql"
        elif sql_hit or status in self.sql_statuses:
            stage = "sql"
        elif mql_hit or status in self.mql_statuses:
            stage = "mql"
        else:
            stage = "lead"
        return LeadStage(stage, mql_at, sql_at)

    def describe(self) -> str:
        if not self.configured:
            return (
                "inferred: only a converted lead counts as SQL, no lead as MQL (MQL→SQL is not "
                "meaningful); set salesforce.mql_statuses / mql_date_field"
            )
        mql = _rule_text(self.mql_statuses, self.mql_date_field) or "none"
        sql = _rule_text(self.sql_statuses, self.sql_date_field)
        return f"MQL = {mql}; SQL = converted" + (f" or {sql}" if sql else "")


def _rule_text(statuses: frozenset[str], field: str) -> str:
    parts = []
    if statuses:
        parts.append("Status in " + ", ".join(sorted(statuses)))
    if field:
        parts.append(f"Lead.{field} set")
    return " or ".join(parts)


def _signal(value: Any) -> tuple[bool, datetime | None]:
    """A date, date-time or checkbox field: (is it set, when)."""
    if value is None or value is False or value == "":
        return False, None
    if value is True:
        return True, None
    if isinstance(value, str):
        if len(value) == 10:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                return True, None
            return True, datetime.combine(day, time(0), tzinfo=UTC)
        try:
            return True, parse_datetime(value)
        except ValueError:
            return True, None
    return True, None
