"""``crm-roi sync``, ``crm-roi runs`` and ``crm-roi serve`` (DESIGN section 10)."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from adapters import registry
from connector.cli import AppContext, Failure, Usage, pass_app
from connector.config import Config
from connector.store import Store, schema
from sync.lock import LockHeld, SyncLock
from sync.pipeline import SyncReport, run_sync

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(payload, ensure_ascii=False)


def use_json_logs() -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())


class StreamProgress:
    """A rich progress bar per stream on a terminal; plain log lines elsewhere."""

    def __init__(self, app: AppContext) -> None:
        self.enabled = app.err.is_terminal and not app.quiet
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(pulse_style="cyan"),
            TextColumn("{task.fields[records]:>10,} records {task.fields[pages]:>5,} pages"),
            TimeElapsedColumn(),
            console=app.err,
            transient=False,
            disable=not self.enabled,
        )
        self.tasks: dict[str, TaskID] = {}
        self._logged: dict[str, int] = {}

    def __call__(self, stream: str, records: int, pages: int) -> None:
        if self.enabled:
            if stream not in self.tasks:
                self.tasks[stream] = self.progress.add_task(stream, total=None, records=0, pages=0)
            self.progress.update(self.tasks[stream], records=records, pages=pages)
        elif records - self._logged.get(stream, 0) >= 10_000 or pages == 1:
            self._logged[stream] = records
            log.info("%s: %d records in %d pages so far", stream, records, pages)

    def __enter__(self) -> StreamProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


def print_report(app: AppContext, report: SyncReport) -> None:
    table = Table(
        title=f"sync run {report.run_id}: {report.status}",
        title_justify="left",
        header_style="bold",
    )
    for name in ("stream", "read", "inserted", "updated", "deleted", "failed", "pages", "error"):
        table.add_column(name, justify="left" if name in ("stream", "error") else "right")
    for s in report.streams:
        table.add_row(
            s.key,
            f"{s.read:,}",
            f"{s.inserted:,}",
            f"{s.updated:,}",
            f"{s.deleted:,}",
            "0" if s.error is None else "1",
            f"{s.pages:,}",
            s.error or "",
        )
    app.out.print(table)
    if report.pushed:
        app.out.print(
            f"write-back: {report.written} campaigns updated, "
            f"{len(report.write_failed)} failed (retried next run)"
        )
    for error in report.errors():
        app.err.print(f"[red]error[/]: {error}", highlight=False)


@click.command()
@click.option(
    "--source",
    "only",
    metavar="NAME",
    default=None,
    help="only this system (salesforce, google_ads, meta_ads, ...)",
)
@click.option("--full", is_flag=True, help="re-read everything, ignoring the saved cursors")
@click.option("--no-push", is_flag=True, help="pull and compute, write nothing to the CRM")
@click.option("--wait", is_flag=True, help="if another sync holds the store, wait for it")
@click.option("--json-logs", is_flag=True, help="log one JSON object per line")
@pass_app
def sync(
    app: AppContext, only: str | None, full: bool, no_push: bool, wait: bool, json_logs: bool
) -> None:
    """Pull every enabled source, compute attribution and budgets, push ROI fields back.

    Exit status 3 means some records failed and the rest landed; the next run retries them.

    \b
    Examples:
      crm-roi sync
      crm-roi sync --source google_ads --full --no-push
    """
    if json_logs:
        use_json_logs()
    if not app.quiet:
        logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    config = app.config()
    if not config.enabled_sources and only is None:
        raise Usage(
            f"nothing to sync: every system is disabled in {config.path}; set enabled = true "
            "in the sections of the systems you use ([salesforce], [google_ads], ...), then "
            "`crm-roi doctor` checks them"
        )
    with Store.open(config.connector.database_url) as store:
        progress = StreamProgress(app)
        try:
            with progress:
                report = run_sync(
                    store,
                    config,
                    only=only,
                    full=full,
                    push=not no_push,
                    progress=progress,
                    wait=None if wait else 0.0,
                )
        except LockHeld as exc:
            raise Failure(str(exc)) from None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    print_report(app, report)
    if report.exit_code:
        raise SystemExit(report.exit_code)


@click.command()
@click.option(
    "--last", type=click.IntRange(min=1), default=10, show_default=True, help="how many runs"
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_app
def runs(app: AppContext, last: int, fmt: str) -> None:
    """Show the latest sync runs: when, how long, what each stream read and wrote, errors.

    \b
    Example:
      crm-roi runs --last 5
    """
    config = app.config(resolve_secrets=False)
    t = schema.sync_runs
    with (
        Store.open(config.connector.database_url, create=False) as store,
        store.engine.connect() as conn,
    ):
        rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(last)).all()
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "command": r.command,
                        "started_at": r.started_at.isoformat(),
                        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                        "status": r.status,
                        "counts": r.counts,
                        "errors": r.errors,
                        "api_calls": r.api_calls,
                        "host": r.host,
                        "pid": r.pid,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(header_style="bold")
    for name in (
        "run",
        "started (UTC)",
        "seconds",
        "status",
        "read",
        "written",
        "deleted",
        "failed",
        "api calls",
        "errors",
    ):
        table.add_column(name)
    for r in rows:
        streams = {k: v for k, v in (r.counts or {}).items() if "." in k}
        read = sum(v.get("read", 0) for v in streams.values())
        written = sum(v.get("inserted", 0) + v.get("updated", 0) for v in streams.values())
        deleted = sum(v.get("deleted", 0) for v in streams.values())
        failed = sum(v.get("failed", 0) for v in streams.values()) + (
            (r.counts or {}).get("writeback", {}).get("failed", 0)
        )
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{seconds:,.1f}"
            if seconds is not None
            else "running"
            if r.status == "running"
            else "-",
            r.status,
            f"{read:,}",
            f"{written:,}",
            f"{deleted:,}",
            f"{failed:,}",
            str(r.api_calls),
            "; ".join(r.errors or [])[:120],
        )
    app.out.print(table)


@click.command()
@click.option("--once", is_flag=True, help="run one scheduled sync now, then exit")
@click.option("--json-logs", is_flag=True, help="log one JSON object per line")
@pass_app
def serve(app: AppContext, once: bool, json_logs: bool) -> None:
    """Run the webhook server, its workers and the scheduled sync together until SIGTERM.

    The Flask app answers on [server] host and port under waitress (/webhooks/<provider>,
    the admin API, /healthz); webhook workers turn stored events into CRM leads; the
    scheduler runs a sync on the [schedule] cron, never two at once. SIGTERM or Ctrl-C stops
    all three cleanly: requests in flight are answered, the sync finishes its batch.

    \b
    Examples:
      crm-roi serve
      crm-roi serve --once        # one scheduled sync now, then exit
    """
    from sync.scheduler import SyncScheduler, cron_trigger
    from webhooks.server import WebhookService

    if json_logs:
        use_json_logs()
    if not app.quiet:
        logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    config = app.config()
    stop = threading.Event()
    store = Store.open(config.connector.database_url)

    def job() -> None:
        try:
            report = run_sync(store, config, command="scheduled sync", stop=stop)
            log.info("scheduled sync run %s: %s", report.run_id, report.status)
        except LockHeld as exc:
            log.info("skipped: %s", exc)

    if once:
        job()
        store.close()
        return
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing work in hand, then stopping", signal.Signals(signum).name)
        stop.set()
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        webhooks = WebhookService(config, store)
    except OSError as exc:
        store.close()
        raise Failure(
            f"cannot listen on {config.server.host}:{config.server.port}: "
            f"{exc.strerror or exc} (check [server] host and port)"
        ) from None
    scheduler = (
        SyncScheduler(
            job,
            cron_trigger(config.schedule.sync, config.connector.timezone),
            timezone=config.connector.timezone,
        )
        if config.schedule.enabled
        else None
    )
    # What is loaded by now lives as long as the process: keep it out of the collector's
    # full passes, which otherwise walk it all while holding the GIL the requests wait for.
    gc.freeze()
    webhooks.start()
    if scheduler is not None:
        scheduler.start()
    while not done.wait(1.0):
        pass
    webhooks.stop()
    if scheduler is not None:
        scheduler.stop(wait=True)
    store.close()
    log.info("stopped")
    sys.stdout.flush()


def doctor_checks(config: Config) -> list[tuple[bool, str]]:
    """Every enabled system has an adapter; the last run's outcome (a run that died without
    finishing is a finding)."""
    checks = [(False, why) for name in config.enabled_sources if (why := registry.missing(name))]
    return checks + _run_checks(config)


def _run_checks(config: Config) -> list[tuple[bool, str]]:
    with Store.if_ready(config.connector.database_url) as store:
        if store is None:
            return []
        try:
            return _last_run_checks(store)
        except Exception as exc:  # doctor reports, never crashes
            return [(False, f"sync runs: cannot read the store: {exc}")]


def _last_run_checks(store: Store) -> list[tuple[bool, str]]:
    t = schema.sync_runs
    with store.engine.connect() as conn:
        last = conn.execute(select(t).order_by(t.c.id.desc()).limit(1)).first()
    if last is None:
        return [(True, "sync runs: none yet (`crm-roi sync` starts one)")]
    when = f"{last.started_at:%Y-%m-%d %H:%M} UTC"
    if last.status == "interrupted":
        return [(True, f"warning: sync run {last.id} ({when}) was interrupted: {last.errors[0]}")]
    if last.status == "running":
        try:
            with SyncLock(store, "doctor"):
                pass
        except LockHeld:
            return [(True, f"sync run {last.id} is running since {when}")]
        return [
            (
                True,
                f"warning: sync run {last.id} ({when}, {last.host} pid {last.pid}) is marked "
                "running but no process holds the sync lock: it was killed; the next sync "
                "marks it interrupted",
            )
        ]
    if last.status == "ok":
        return [(True, f"last sync run {last.id} ({when}): ok")]
    first = f": {last.errors[0]}" if last.errors else ""
    line = f"last sync run {last.id} ({when}) {last.status}{first} (`crm-roi runs` lists them)"
    return [(last.status != "failed", line if last.status == "failed" else f"warning: {line}")]


def register(cli: click.Group) -> None:
    cli.add_command(sync)
    cli.add_command(runs)
    cli.add_command(serve)
