"""Processing stored events: from a stored notification to a CRM lead and a touchpoint.

For each claimed event (see :mod:`webhooks.events` for why claims are safe with several
workers): the provider reads the stored body, fetching the answers where the platform only
sent a reference; the ad campaign is mapped to the CRM campaign (DESIGN section 6); the CRM
writer finds the person by e-mail or creates a lead with ``LeadSource`` = ``[webhooks]
lead_source`` and adds the campaign membership; then the touchpoint is upserted and the
event marked done **in one transaction**, fenced by the claim, so an event is done once.

The CRM write happens before that commit. If the process dies in between, the event's
lease expires and another attempt repeats the write: the writers find what the first
attempt made (they never duplicate a person or a membership on redelivery), and the
touchpoint is keyed by the CRM's membership id, so the store gets it once. The
touchpoint's key is the same ``(crm, CampaignMember id)`` the CRM sync pulls, so the
touch is counted once in attribution when the sync later reads the membership.

Failures are retried with exponential backoff (with jitter, so a burst of failures does
not come back as a burst) until ``[webhooks] max_attempts``, then dead-lettered with their
error; errors that no retry can cure (no e-mail, a payload we cannot read, a 4xx from the
platform or the CRM) are dead-lettered at once. ``crm-roi webhooks replay`` retries them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters import registry
from adapters.base import CrmWriter, InboundLead, LeadOutcome
from adapters.http import ClientError, HttpError, RateLimited
from connector import model
from connector.config import Config
from connector.roi.mapping import CampaignMapper, ExplicitMapping, MappedTo
from connector.store import Store
from webhooks import events
from webhooks.events import Event
from webhooks.fetch import PlatformLeads
from webhooks.locks import PersonLocks
from webhooks.providers import PROVIDERS
from webhooks.providers.base import (
    LeadData,
    LeadFetcher,
    PermanentError,
    ProcessContext,
    Skip,
)
from webhooks.verify import Rejected

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NoWriter(RuntimeError):
    """No CRM can take webhook leads with this configuration; the message says why."""


def lead_writer(config: Config, store: Store) -> CrmWriter:
    """The writer of ``[webhooks] crm``; raises :class:`NoWriter` when there is none."""
    crm = config.webhooks.crm
    if not getattr(config, crm).enabled:
        raise NoWriter(
            f"webhooks.crm is {crm!r} but {crm}.enabled is false: leads stay stored (pending) "
            "until a CRM is enabled"
        )
    try:
        return registry.build_writer(crm, config, store)
    except registry.NotAvailable as exc:
        raise NoWriter(f"{exc}; leads stay pending") from None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart an event is tried, and how long a claim lasts."""

    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    lease: timedelta = timedelta(minutes=10)

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        return cls(max_attempts=config.webhooks.max_attempts)

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Exponential, with "equal jitter": never sooner than half the step."""
        step = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return step / 2 + rng.uniform(0, step / 2)


class CampaignMap:
    """The DESIGN section 6 mapper over the store's CRM campaigns, rebuilt once a minute so
    campaigns that a sync brings in are seen without a restart."""

    def __init__(self, config: Config, store: Store, *, ttl: float = 60.0) -> None:
        self.config = config
        self.store = store
        self.ttl = ttl
        self._mapper: CampaignMapper | None = None
        self._built = 0.0
        self._lock = threading.Lock()

    def _build(self) -> CampaignMapper:
        explicit = [
            ExplicitMapping(row.ad_source, row.ad_campaign_id, row.crm_campaign_id)
            for row in self.config.mapping
        ]
        return CampaignMapper(
            self.store.iter_records(model.Campaign),
            explicit,
            self.config.mapping_rules.name_regex or None,
        )

    def resolve(self, ad_source: str, ad_campaign_id: str, name: str | None) -> MappedTo | None:
        with self._lock:
            if self._mapper is None or time.monotonic() - self._built > self.ttl:
                self._mapper = self._build()
                self._built = time.monotonic()
            mapper = self._mapper
        return mapper.resolve(ad_source, ad_campaign_id, name)


@dataclass
class PassReport:
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    states: dict[int, str] = field(default_factory=dict)

    def add(self, event_id: int, state: str) -> None:
        self.states[event_id] = state
        if state == "done":
            self.done += 1
        elif state == "pending":
            self.retried += 1
        elif state == "dead":
            self.dead += 1
        else:
            self.lost += 1


class _ClaimLost(Exception):
    """Another worker holds the event now (this worker's lease expired)."""


def _is_permanent(exc: Exception) -> bool:
    if isinstance(exc, PermanentError | Rejected):
        return True
    if isinstance(exc, ClientError) and not isinstance(exc, RateLimited):
        return True  # a 4xx: the platform or the CRM refuses this very request
    return isinstance(exc, ValueError | KeyError | TypeError)  # a lead the writer cannot take


def _safe_error(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"


class Processor:
    """Processes one claimed event at a time with one CRM writer (not thread-safe: one per
    worker thread, as CRM clients and their sessions are)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        writer: CrmWriter,
        *,
        fetcher: LeadFetcher,
        campaigns: CampaignMap,
        locks: PersonLocks,
        policy: RetryPolicy,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.writer = writer
        self.context = ProcessContext(fetcher, config.webhooks.process_test_leads)
        self.campaigns = campaigns
        self.locks = locks
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()

    def run(self, event: Event) -> str:
        """Process ``event`` (claimed); returns its new state, or ``lost`` when another
        worker took the claim over meanwhile."""
        try:
            touchpoint, note = self._process(event)
            now = self.clock()
            with self.store.begin() as conn:
                if not events.mark_done(conn, event, now=now, note=note):
                    raise _ClaimLost  # rolls the touchpoint back with it
                if touchpoint is not None:
                    self.store.upsert([touchpoint], now=now, connection=conn)
        except _ClaimLost:
            log.warning("webhook event %s: claim lost to another worker", event.id)
            return "lost"
        except Exception as exc:
            return self._failed(event, exc)
        log.info(
            "webhook event %s (%s) done%s", event.id, event.provider, f": {note}" if note else ""
        )
        return "done"

    def _failed(self, event: Event, exc: Exception) -> str:
        error = _safe_error(exc)
        permanent = _is_permanent(exc)
        if permanent or event.attempts >= self.policy.max_attempts:
            retry_at = None
        else:
            wait = self.policy.delay(event.attempts, self.rng)
            if isinstance(exc, RateLimited) and exc.retry_after:
                wait = max(wait, exc.retry_after)
            retry_at = self.clock() + timedelta(seconds=wait)
        state = events.mark_failed(self.store, event, error, retry_at=retry_at) or "lost"
        level = logging.WARNING if state == "pending" else logging.ERROR
        log.log(
            level,
            "webhook event %s (%s) attempt %d failed, now %s: %s",
            event.id,
            event.provider,
            event.attempts,
            state,
            error,
        )
        if not isinstance(exc, HttpError | PermanentError | Rejected):
            log.debug("webhook event %s: traceback", event.id, exc_info=exc)
        return state

    def _process(self, event: Event) -> tuple[model.Touchpoint | None, str | None]:
        provider = PROVIDERS.get(event.provider)
        if provider is None:
            raise PermanentError(f"no provider {event.provider!r} in this version")
        action = provider.interpret(event.dedup_key, event.body, self.context)
        if isinstance(action, Skip):
            return None, f"skipped: {action.reason}"
        return self._lead(event, action)

    def _campaign(self, lead: LeadData) -> tuple[MappedTo | None, str | None]:
        if lead.crm_campaign_id:
            return MappedTo(self.writer.name, lead.crm_campaign_id, "sender"), None
        if lead.ad_source and lead.ad_campaign_id:
            mapped = self.campaigns.resolve(
                lead.ad_source, lead.ad_campaign_id, lead.ad_campaign_name
            )
            if mapped is None:
                return None, (
                    f"ad campaign {lead.ad_source}:{lead.ad_campaign_id} is not mapped to a CRM "
                    "campaign: lead created without a campaign membership (add a [[mapping]] "
                    "row and replay to add it)"
                )
            return mapped, None
        return None, "the lead names no ad campaign: created without a campaign membership"

    def _lead(self, event: Event, lead: LeadData) -> tuple[model.Touchpoint | None, str | None]:
        if not lead.email:
            raise PermanentError(
                f"lead {lead.ref} has no e-mail address: it cannot be matched in the CRM"
            )
        mapped, note = self._campaign(lead)
        occurred = lead.occurred_at or event.received_at
        inbound = InboundLead(
            email=lead.email,
            first_name=lead.first_name,
            last_name=lead.last_name,
            company=lead.company,
            phone=lead.phone,
            campaign_id=mapped.crm_campaign_id if mapped else None,
            lead_source=self.config.webhooks.lead_source,
            occurred_at=occurred,
            external_ref=f"{event.provider}:{lead.ref}",
            extra={**lead.extra, "webhook_event": str(event.id)},
        )
        with self.locks.hold(lead.email):
            outcome: LeadOutcome = self.writer.upsert_inbound_lead(inbound)
        if mapped is None or not outcome.member_id:
            return None, note
        touchpoint = model.Touchpoint(
            source=self.writer.name,
            external_id=outcome.member_id,
            person_source=self.writer.name,
            person_id=outcome.person_id,
            campaign_source=mapped.crm_source,
            campaign_id=mapped.crm_campaign_id,
            occurred_at=occurred,
            kind="ad_lead_form",
            responded=True,
            modified_at=self.clock(),
        )
        return touchpoint, note


class Workers:
    """What processing needs besides a writer, shared by all worker threads."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        fetcher: LeadFetcher | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher or PlatformLeads(config)
        self.policy = policy or RetryPolicy.from_config(config)
        self.clock = clock
        self.campaigns = CampaignMap(config, store)
        self.locks = PersonLocks(store)

    def processor(self, writer: CrmWriter) -> Processor:
        return Processor(
            self.config,
            self.store,
            writer,
            fetcher=self.fetcher,
            campaigns=self.campaigns,
            locks=self.locks,
            policy=self.policy,
            clock=self.clock,
        )

    def claim_one(self) -> Event | None:
        claimed = events.claim(
            self.store,
            now=self.clock(),
            lease=self.policy.lease,
            limit=1,
            max_attempts=self.policy.max_attempts,
        )
        return claimed[0] if claimed else None


def process_pending(
    workers: Workers,
    writer: CrmWriter,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
) -> PassReport:
    """One pass: process every event due now (at most ``limit``), oldest first. Events that
    fail are due again only after their backoff, so the pass ends."""
    processor = workers.processor(writer)
    report = PassReport()
    while (limit is None or len(report.states) < limit) and not (stop and stop.is_set()):
        event = workers.claim_one()
        if event is None:
            break
        report.add(event.id, processor.run(event))
    return report


WriterFactory = Callable[[], CrmWriter]


class WorkerPool:
    """``threads`` worker threads inside ``crm-roi serve``, each with its own CRM writer.

    A thread sleeps until :meth:`wake` (called when the intake stores an event) or for
    ``poll`` seconds, claims one event, processes it, and repeats until :meth:`stop`. With no
    CRM writer available the threads take nothing: leads stay pending, never dead.
    """

    def __init__(
        self,
        workers: Workers,
        writer_factory: WriterFactory,
        *,
        threads: int = 1,
        poll: float = 1.0,
    ) -> None:
        self.workers = workers
        self.writer_factory = writer_factory
        self.threads = threads
        self.poll = poll
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"webhook-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the event in hand, then stop; unstarted work stays pending."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _writer(self) -> Processor | None:
        try:
            return self.workers.processor(self.writer_factory())
        except NoWriter as exc:
            log.warning("webhook workers idle: %s", exc)
        except Exception as exc:
            log.error("webhook workers cannot reach the CRM: %s", _safe_error(exc))
        return None

    def _loop(self) -> None:
        processor: Processor | None = None
        while not self._stop.is_set():
            if processor is None:
                processor = self._writer()
                if processor is None:
                    self._stop.wait(60.0)
                    continue
            try:
                event = self.workers.claim_one()
            except Exception as exc:
                log.error("webhook workers cannot claim events: %s", _safe_error(exc))
                self._stop.wait(self.poll)
                continue
            if event is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            if self._stop.is_set():
                events.release(self.workers.store, [event])
                break
            processor.run(event)
            self.processed += 1
