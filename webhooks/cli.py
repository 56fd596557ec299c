"""``crm-roi webhooks list|replay|process`` and the webhook checks of ``crm-roi doctor``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import click
from rich.table import Table
from sqlalchemy import select

from adapters import registry
from connector.cli import AppContext, Failure, pass_app
from connector.config import Config, ConfigError
from connector.store import Store, schema
from webhooks import events
from webhooks.app import resolve_secrets

log = logging.getLogger(__name__)


@click.group("webhooks")
def webhooks_group() -> None:
    """Inspect, retry and process the webhook events in the store.

    \b
    Examples:
      crm-roi webhooks list --dead
      crm-roi webhooks replay --dead
    """


@webhooks_group.command("list")
@click.option("--dead", is_flag=True, help="only dead letters (failed every attempt)")
@click.option(
    "--status", type=click.Choice(events.STATES), default=None, help="only events in this state"
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_app
def list_command(app: AppContext, dead: bool, status: str | None, limit: int, fmt: str) -> None:
    """Show the event counts by state and the newest events, with their last error.

    Lead data (the bodies) is never shown.

    \b
    Example:
      crm-roi webhooks list --dead --format json
    """
    config = app.config(resolve_secrets=False)
    if dead:
        status = "dead"
    with Store.open(config.connector.database_url, create=False) as store:
        counts = events.counts(store)
        found = events.list_events(store, status=status, limit=limit)
    if fmt == "json":
        click.echo(json.dumps({"counts": counts, "events": [e.summary() for e in found]}, indent=2))
        return
    app.out.print(", ".join(f"{n:,} {state}" for state, n in counts.items()), highlight=False)
    table = Table(header_style="bold")
    for name in ("id", "provider", "dedup key", "status", "attempts", "received (UTC)", "note"):
        table.add_column(name)
    for e in found:
        table.add_row(
            str(e.id),
            e.provider,
            e.dedup_key[:40],
            e.status,
            str(e.attempts),
            f"{e.received_at:%Y-%m-%d %H:%M:%S}",
            (e.last_error or "")[:100],
        )
    app.out.print(table)


@webhooks_group.command("replay")
@click.option("--dead", is_flag=True, help="every dead letter")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@pass_app
def replay_command(app: AppContext, dead: bool, ids: tuple[int, ...]) -> None:
    """Make events pending again, with a fresh count of attempts, for the workers to retry.

    Takes the dead letters (--dead) and/or event ids (dead or done ones: replaying a done
    event repeats its CRM write, which finds what it made the first time).

    \b
    Examples:
      crm-roi webhooks replay --dead
      crm-roi webhooks replay 42 43
    """
    if not dead and not ids:
        raise click.UsageError("give event ids, or --dead for every dead letter")
    config = app.config(resolve_secrets=False)
    with Store.open(config.connector.database_url, create=False) as store:
        replayed = events.replay(store, ids=list(ids), dead=dead)
        missing = sorted(set(ids) - set(replayed))
        t = schema.webhook_events
        with store.engine.connect() as conn:
            busy = dict(conn.execute(select(t.c.id, t.c.status).where(t.c.id.in_(missing))).all())
    app.out.print(f"{len(replayed)} event(s) pending again: {replayed[:50]}", highlight=False)
    unknown = [i for i in missing if i not in busy]
    problems = []
    if unknown:
        problems.append(f"no such event: {', '.join(map(str, unknown[:50]))}")
    if busy:
        problems.append(
            "not replayed while being processed: "
            + ", ".join(f"{i} ({state})" for i, state in sorted(busy.items())[:50])
        )
    if problems:
        raise Failure("; ".join(problems) + " (`crm-roi webhooks list` shows the events)")


@webhooks_group.command("process")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="at most this many")
@pass_app
def process_command(app: AppContext, limit: int | None) -> None:
    """Process the stored events that are due now, once, and exit (what serve's workers do).

    Useful from cron on a host that only takes webhooks in, and after a replay. Exit status 3
    when some events were dead-lettered (the rest landed).

    \b
    Example:
      crm-roi webhooks process --limit 100
    """
    from webhooks import worker

    config = app.config()
    with Store.open(config.connector.database_url, create=False) as store:
        try:
            writer = worker.lead_writer(config, store)
        except worker.NoWriter as exc:
            raise Failure(str(exc)) from None
        report = worker.process_pending(worker.Workers(config, store), writer, limit=limit)
        counts = events.counts(store)
    app.out.print(
        f"processed {len(report.states)}: {report.done} done, {report.retried} to retry, "
        f"{report.dead} dead"
        + (f", {report.lost} taken over by another worker" if report.lost else "")
        + f"; now {counts['pending']} pending, {counts['dead']} dead",
        highlight=False,
    )
    if report.dead:
        raise SystemExit(3)  # like a sync with failed records: the rest landed


def register(cli: click.Group) -> None:
    cli.add_command(webhooks_group)


def doctor_checks(config: Config) -> Iterable[tuple[bool, str]]:
    """Which endpoints are on, and whether their secrets are set."""
    try:
        secrets = resolve_secrets(config)
    except ConfigError as exc:
        return [(False, f"webhooks: {exc}")]
    if not secrets:
        return [(True, "webhooks: no endpoint configured")]
    checks = [(True, f"webhooks: /webhooks/{name} is on") for name in secrets]
    crm = config.webhooks.crm
    if crm not in config.enabled_crms:
        checks.append(
            (
                False,
                f"webhooks: leads go to webhooks.crm = {crm!r}, but {crm}.enabled is false: "
                f"they would stay pending; enable [{crm}] or name an enabled CRM",
            )
        )
    elif why := registry.missing(crm, writer=True):
        checks.append((False, f"webhooks: leads cannot reach {crm}: {why}"))
    needs = {"meta": ("meta_ads", "access_token"), "linkedin": ("linkedin_ads", "access_token")}
    for name, (section, key) in needs.items():
        if name in secrets:
            try:
                config.secret(section, key)
            except ConfigError as exc:
                checks.append((False, f"webhooks: {name} leads cannot be fetched: {exc}"))
    return checks
