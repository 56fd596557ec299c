"""``crm-roi sync``: pull every enabled source, compute, push — in that order, safely.

- **pull**: each enabled source (CRMs first, then ad platforms), each stream in turn through
  :func:`sync.runner.sync_source`, which commits every batch with its cursor. A source that
  fails (bad credentials, quota) is recorded and the others go on.
- **compute**: attribution, ROI, budgets and alerts on whatever is in the store.
- **push**: only if compute succeeded: the ROI fields onto the CRM's campaigns and the alerts
  to their channels. Write-back only sends changed values and records what the CRM
  confirmed, so a re-run after a crash sends nothing twice.

The whole run holds the store's sync lock and is recorded in the run history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters import registry
from adapters.base import CrmWriter, Source, WriteResult
from connector import failpoints
from connector.config import Config
from connector.roi import RoiEngine, Settings
from connector.store import Store
from connector.store.dataset import Dataset
from sync.lock import SyncLock
from sync.runner import ProgressHook, SourceResult, StreamResult, SyncInterrupted, sync_source

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 3


def build_sources(
    config: Config, store: Store, only: str | None = None
) -> list[tuple[str, Callable[[], Source]]]:
    """(name, constructor) for every enabled source, or only ``only``; construction is
    deferred so that one system's failing login is recorded like any other failure."""
    names = list(config.enabled_sources)
    if only is not None:
        if only not in registry.SOURCES:
            raise ValueError(
                f"--source {only!r} is not a known system; choose one of "
                + ", ".join(registry.SOURCES)
            )
        if only not in names:
            raise ValueError(f"--source {only}: {only}.enabled is false in the config")
        names = [only]
    return [(name, (lambda n=name: registry.build_source(n, config, store))) for name in names]


def build_writer(config: Config, store: Store) -> CrmWriter | None:
    for crm in config.enabled_crms:
        if crm in registry.WRITERS:
            return registry.build_writer(crm, config, store)
    return None


ComputeStep = Callable[["SyncContext"], None]
PushStep = Callable[["SyncContext"], None]


@dataclass
class SyncContext:
    """What the stages share; push steps read the engine that compute built."""

    store: Store
    config: Config
    now: datetime
    settings: Settings
    engine: RoiEngine | None = None
    writer: CrmWriter | None = None
    write_result: WriteResult = field(default_factory=WriteResult)
    push_failures: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncReport:
    run_id: int
    sources: list[SourceResult] = field(default_factory=list)
    compute_error: str | None = None
    push_error: str | None = None
    push_failures: list[str] = field(default_factory=list)
    written: int = 0
    write_failed: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    pushed: bool = False
    interrupted: str | None = None
    api_calls: int = 0

    @property
    def streams(self) -> list[StreamResult]:
        return [s for source in self.sources for s in source.streams]

    @property
    def exit_code(self) -> int:
        if self.compute_error is not None or self.interrupted is not None:
            return EXIT_FAILED
        pulled_any = any(s.error is None for s in self.streams)
        if self.streams and not pulled_any:
            return EXIT_FAILED
        if (
            any(s.error for s in self.streams)
            or self.write_failed
            or self.push_error
            or self.push_failures
        ):
            return EXIT_PARTIAL
        return EXIT_OK

    @property
    def status(self) -> str:
        if self.interrupted is not None:
            return "interrupted"
        return {EXIT_OK: "ok", EXIT_PARTIAL: "partial", EXIT_FAILED: "failed"}[self.exit_code]

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {s.key: s.as_dict() for s in self.streams}
        out["writeback"] = {"written": self.written, "failed": len(self.write_failed)}
        out["seconds"] = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        return out

    def errors(self) -> list[str]:
        errors = [f"{s.key}: {s.error}" for s in self.streams if s.error]
        if self.compute_error:
            errors.append(f"compute: {self.compute_error}")
        if self.push_error:
            errors.append(f"push: {self.push_error}")
        errors.extend(f"push: {failure}" for failure in self.push_failures)
        errors.extend(f"writeback {rid}: {err}" for rid, err in self.write_failed.items())
        return errors


def alerts_step(ctx: SyncContext) -> None:
    """Budgets, forecasts and alert rules on the computed figures (DESIGN section 5)."""
    from connector.alerts.run import budget_engine_for, evaluate_alerts

    budgets = budget_engine_for(ctx.store, ctx.config, as_of=ctx.now, roi_engine=ctx.engine)
    ctx.extras["budget_engine"] = budgets
    ctx.extras["alerts"] = evaluate_alerts(
        ctx.store, ctx.config, as_of=ctx.now, roi_engine=ctx.engine, budget_engine=budgets
    )


def writeback_step(ctx: SyncContext) -> None:
    """Write the ROI fields of every computed campaign back to the CRM (DESIGN section 7)."""
    if ctx.writer is None or ctx.engine is None:
        return
    from sync import writeback

    budgets = ctx.extras.get("budget_engine")
    ctx.write_result = writeback.push_campaign_fields(
        ctx.store,
        ctx.engine,
        ctx.writer,
        ctx.config,
        now=ctx.now,
        forecast_for=budgets.forecast_for if budgets is not None else None,
    )


def alert_delivery_step(ctx: SyncContext) -> None:
    """Deliver open alerts to every configured channel, once each; failures retry next run."""
    from sync.alerts.delivery import channels_from_config, deliver_alerts

    channels, problems = channels_from_config(ctx.config, crm_writer=ctx.writer)
    ctx.push_failures.extend(problems)
    delivery = deliver_alerts(ctx.store, channels, now=ctx.now)
    for channel, errors in delivery.failed.items():
        ctx.push_failures.extend(f"alert delivery to {channel}: {e}" for e in errors)


DEFAULT_COMPUTE_STEPS: tuple[ComputeStep, ...] = (alerts_step,)
DEFAULT_PUSH_STEPS: tuple[PushStep, ...] = (writeback_step, alert_delivery_step)


def run_sync(
    store: Store,
    config: Config,
    *,
    only: str | None = None,
    full: bool = False,
    push: bool = True,
    sources: Sequence[tuple[str, Callable[[], Source]]] | None = None,
    writer: CrmWriter | None = None,
    compute_steps: Sequence[ComputeStep] | None = None,
    push_steps: Sequence[PushStep] | None = None,
    progress: ProgressHook | None = None,
    wait: float | None = 0.0,
    now: datetime | None = None,
    command: str = "sync",
    stop: threading.Event | None = None,
) -> SyncReport:
    """Run pull -> compute -> push under the store's sync lock; never raises for a source's
    failure (see the report), raises :class:`sync.lock.LockHeld` when another sync runs."""
    now = now or datetime.now(UTC)
    with SyncLock(store, command, wait=wait):
        run_id = store.start_run(command)
        report = SyncReport(run_id=run_id)
        try:
            _run_stages(
                store,
                config,
                report,
                only=only,
                full=full,
                push=push,
                sources=sources,
                writer=writer,
                compute_steps=compute_steps,
                push_steps=push_steps,
                progress=progress,
                now=now,
                stop=stop,
            )
        finally:
            store.finish_run(
                run_id, report.status, report.counts(), report.errors(), api_calls=report.api_calls
            )
    return report


def _run_stages(
    store: Store,
    config: Config,
    report: SyncReport,
    *,
    only: str | None,
    full: bool,
    push: bool,
    sources: Sequence[tuple[str, Callable[[], Source]]] | None,
    writer: CrmWriter | None,
    compute_steps: Sequence[ComputeStep] | None,
    push_steps: Sequence[PushStep] | None,
    progress: ProgressHook | None,
    now: datetime,
    stop: threading.Event | None,
) -> None:
    started = time.perf_counter()
    api_calls = 0
    for name, make in sources if sources is not None else build_sources(config, store, only):
        try:
            source = make()
        except Exception as exc:
            log.error("%s: cannot start: %s", name, exc)
            report.sources.append(SourceResult(name, [StreamResult(name, "*", error=str(exc))]))
            continue
        try:
            report.sources.append(
                sync_source(store, source, full=full, now=now, progress=progress, stop=stop)
            )
            api_calls += source.api_calls()
        except SyncInterrupted as exc:
            report.interrupted = str(exc)
            report.sources.append(SourceResult(name, [StreamResult(name, "*", error=str(exc))]))
            return
        finally:
            source.close()
    report.api_calls = api_calls
    report.stage_seconds["pull"] = time.perf_counter() - started
    failpoints.hit("after-pull")

    started = time.perf_counter()
    settings = Settings.from_config(config)
    ctx = SyncContext(store=store, config=config, now=now, settings=settings)
    try:
        ctx.engine = RoiEngine(Dataset.load(store), settings, as_of=now)
        for step in DEFAULT_COMPUTE_STEPS if compute_steps is None else compute_steps:
            step(ctx)
    except Exception as exc:
        log.exception("compute failed")
        report.compute_error = f"{type(exc).__name__}: {exc}"
        return
    finally:
        report.stage_seconds["compute"] = time.perf_counter() - started
    failpoints.hit("after-compute")
    if not push:
        return

    started = time.perf_counter()
    try:
        ctx.writer = writer if writer is not None else build_writer(config, store)
        for step in DEFAULT_PUSH_STEPS if push_steps is None else push_steps:
            step(ctx)
        report.pushed = True
    except Exception as exc:
        log.error("push failed: %s", exc)
        report.push_error = f"{type(exc).__name__}: {exc}"
    finally:
        report.stage_seconds["push"] = time.perf_counter() - started
    report.written = len(ctx.write_result.written)
    report.write_failed = dict(ctx.write_result.failed)
    report.push_failures = list(ctx.push_failures)
