"""Alert texts in English and Simplified Chinese (``[alerts] language``).

One subject line and one body per rule and language, filled from already formatted values,
so the numbers read the same in every channel (Slack, e-mail, CRM task, webhook) and in
``crm-roi alerts``. Money is shown with thousands separators and the currency code, ratios as
percents with one decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType

from connector.money import format_money

LANGUAGES: tuple[str, ...] = ("en", "zh-CN")

_SCOPE_WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "channel": "Channel {name}",
                "department": "Department {name}",
                "category": "Category {name}",
                "campaign": "Campaign '{name}'",
                "total": "Total spend",
            }
        ),
        "zh-CN": MappingProxyType(
            {
                "channel": "渠道 {name}",
                "department": "部门 {name}",
                "category": "预算类别 {name}",
                "campaign": "活动「{name}」",
                "total": "总花费",
            }
        ),
    }
)

_LIFETIME: Mapping[str, str] = MappingProxyType(
    {"en": "{start} to {end}", "zh-CN": "{start} 至 {end}"}
)

_FIGURES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "roas": "ROAS",
                "mql_to_sql": "MQL to SQL rate",
                "ltv_to_cac": "LTV/CAC",
                "sales_cycle_days": "sales cycle (days)",
                "cpl": "cost per lead",
            }
        ),
        "zh-CN": MappingProxyType(
            {
                "roas": "ROAS",
                "mql_to_sql": "MQL→SQL 转化率",
                "ltv_to_cac": "LTV/CAC",
                "sales_cycle_days": "销售周期（天）",
                "cpl": "单条线索成本",
            }
        ),
    }
)

# (subject, body) per rule; health rules share "health".
_TEXTS: Mapping[str, Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "budget_threshold": (
                    "{scope} reached {threshold} of its {period} budget",
                    "Spent {cost} of {budget} ({consumed}). Forecast for the period: {forecast}.",
                ),
                "forecast_over_budget": (
                    "{scope} is forecast to overspend its {period} budget",
                    "Forecast {forecast} against a budget of {budget} ({forecast_pct}); spent "
                    "{cost} so far ({consumed}), {run_rate} a day over the last 7 days.",
                ),
                "exhaustion": ("", "At this rate the budget runs out on {day}."),
                "under_pacing": (
                    "{scope} is under-spending its {period} budget",
                    "Pacing {pacing} (alert below {threshold}): spent {cost} of {budget} "
                    "({consumed}) with {elapsed} of the period gone.",
                ),
                "category_drift": (
                    "Category {category} is {share} of {period} spend, target {target}",
                    "Category {category} has {share} of the categorized spend in {period} "
                    "({cost}); the target is {target} ± {tolerance}.",
                ),
                "health": (
                    "{scope}: {figure} {value} fails the health rule ({op} {limit})",
                    "The campaign's {figure} is {value}; the rule asks for {op} {limit}. "
                    "Cost so far: {cost}.",
                ),
            }
        ),
        "zh-CN": MappingProxyType(
            {
                "budget_threshold": (
                    "{scope}已用到 {period} 预算的 {threshold}",
                    "已花费 {cost}，预算 {budget}（{consumed}）。本期预测花费：{forecast}。",
                ),
                "forecast_over_budget": (
                    "{scope}预计将超出 {period} 预算",
                    "预测花费 {forecast}，预算 {budget}（{forecast_pct}）；目前已花费 {cost}"
                    "（{consumed}），近 7 天日均 {run_rate}。",
                ),
                "exhaustion": ("", "按此速度，预算将于 {day} 用完。"),
                "under_pacing": (
                    "{scope}的 {period} 预算花费进度偏慢",
                    "花费进度 {pacing}（低于 {threshold} 即提醒）：已花费 {cost}，预算 {budget}"
                    "（{consumed}），本期已过去 {elapsed}。",
                ),
                "category_drift": (
                    "预算类别 {category} 占 {period} 花费的 {share}，目标 {target}",
                    "类别 {category} 在 {period} 的已分类花费中占 {share}（{cost}）；"
                    "目标为 {target} ± {tolerance}。",
                ),
                "health": (
                    "{scope}：{figure} 为 {value}，未达到健康规则（{op} {limit}）",
                    "该活动的 {figure} 为 {value}，规则要求 {op} {limit}。目前花费：{cost}。",
                ),
            }
        ),
    }
)


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"alert language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return language


def money(amount: Decimal, currency: str) -> str:
    """``50,000.00 USD``."""
    return format_money(amount, currency)


def percent(ratio: Decimal | None) -> str:
    """``85.3%`` (one decimal, half-even); ``n/a`` for a missing ratio."""
    if ratio is None:
        return "n/a"
    return f"{(ratio * 100).quantize(Decimal('0.1')):,}%"


def number(value: Decimal | None) -> str:
    if value is None:
        return "n/a"
    return f"{value.quantize(Decimal('0.01')):,}"


def number_against(value: Decimal, limit: Decimal | int, *, below: bool) -> str:
    """``value`` with as many decimals (2 to 6) as it takes to show that it is below (or
    above) ``limit``: 2.9966 against 3 reads ``2.997``, never ``3.00 < 3``."""
    shown = value
    for places in range(2, 7):
        shown = value.quantize(Decimal(1).scaleb(-places))
        if (shown < limit) if below else (shown > limit):
            return f"{shown:,}"
    rounding = ROUND_FLOOR if below else ROUND_CEILING
    return f"{value.quantize(Decimal('0.000001'), rounding=rounding):,}"


def scope_label(language: str, scope: str, display_name: str | None = None) -> str:
    """``Channel paid_social`` / ``渠道 paid_social``; campaigns by their name."""
    kind, _, name = scope.partition(":")
    template = _SCOPE_WORDS[_language(language)].get(kind, "{name}")
    return template.format(name=display_name if kind == "campaign" and display_name else name)


def period_label(language: str, period: str, start: date, end: date) -> str:
    if period != "lifetime":
        return period
    return _LIFETIME[_language(language)].format(start=start.isoformat(), end=end.isoformat())


def figure_label(language: str, figure: str) -> str:
    return _FIGURES[_language(language)].get(figure, figure)


def render(language: str, rule: str, **values: str) -> tuple[str, str]:
    """The subject and body of an alert of ``rule`` (``health_*`` rules share one text)."""
    texts = _TEXTS[_language(language)]
    key = "health" if rule.startswith("health_") else rule
    subject, body = texts[key]
    text = body.format(**values)
    if rule == "forecast_over_budget" and values.get("exhausted_on"):
        separator = "" if language == "zh-CN" else " "
        text += separator + texts["exhaustion"][1].format(day=values["exhausted_on"])
    return subject.format(**values), text


_RESOLVED: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "subject": "Resolved: {subject}",
                "condition cleared": "The condition cleared ({at}).",
                "no longer evaluated": (
                    "No longer checked: the budget or rule was removed, or its period is over "
                    "({at})."
                ),
                "other": "Resolved ({at}).",
            }
        ),
        "zh-CN": MappingProxyType(
            {
                "subject": "已解除：{subject}",
                "condition cleared": "提醒条件已不再满足（{at}）。",
                "no longer evaluated": "已不再检查：预算或规则已删除，或其期间已结束（{at}）。",
                "other": "已解除（{at}）。",
            }
        ),
    }
)


def render_resolution(
    language: str, subject: str, note: str | None, at: datetime | None
) -> tuple[str, str]:
    """The subject and body announcing that the alert titled ``subject`` is over (``note``:
    why it resolved, as the alert history has it; ``at``: when, shown in UTC)."""
    texts = _RESOLVED[_language(language)]
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at is not None else "-"
    body = texts.get(note or "other", texts["other"]).format(at=when)
    return texts["subject"].format(subject=subject), body
