"""A realistic, seeded year of B2B marketing for `crm-roi demo` — no account, no network.

The world is built to exercise everything the connector computes: a campaign hierarchy over
every channel with owners, departments and budget categories; daily ad spend on Google Ads
(USD), Meta (EUR) and LinkedIn (USD) with the noise and weekly rhythm of real accounts;
event and agency costs as expenses; leads that convert into contacts and opportunities with
multi-touch journeys; and budgets where one channel is about to overspend its quarter.

Records go through :meth:`connector.store.Store.upsert`, the path real adapters use, so the
demo is also a smoke test of the store.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from connector import model
from connector.periods import Period

CRM = "demo_crm"
"""The demo's CRM source name (a stand-in for ``salesforce``)."""

REPORTING_CURRENCY = "USD"

_OWNERS = [
    ("005D000000OwnA1", "Maya Chen", "Demand Generation"),
    ("005D000000OwnB2", "Lucas Moreau", "Field Marketing"),
    ("005D000000OwnC3", "Priya Nair", "Product Marketing"),
    ("005D000000OwnD4", "Tom Becker", "Brand"),
    ("005D000000OwnE5", "Sofia Rossi", "Customer Marketing"),
]

# (program name, channel, department index, category, ad platform or None, children)
_PROGRAMS: list[tuple[str, str, int, str, str | None, list[str]]] = [
    (
        "Search Always-On",
        "paid_search",
        0,
        "growth",
        "google_ads",
        [
            "Brand Search",
            "Competitor Search",
            "Category Search - ERP",
            "Category Search - CRM",
            "Search Retargeting",
        ],
    ),
    (
        "Social Prospecting",
        "paid_social",
        0,
        "growth",
        "meta_ads",
        ["Meta Lookalike Q1", "Meta Video Views", "Meta Lead Forms - Ebook", "Meta Retargeting"],
    ),
    (
        "LinkedIn ABM",
        "paid_social",
        0,
        "strategic",
        "linkedin_ads",
        ["LinkedIn Sponsored Content", "LinkedIn Lead Gen Forms", "LinkedIn Conversation Ads"],
    ),
    (
        "Programmatic Display",
        "display",
        3,
        "growth",
        "google_ads",
        ["Display Prospecting", "Display Retargeting", "Gmail Ads"],
    ),
    (
        "Video Awareness",
        "video",
        3,
        "strategic",
        "google_ads",
        ["YouTube Bumper Ads", "YouTube In-Stream"],
    ),
    (
        "Field Events",
        "event",
        1,
        "strategic",
        None,
        [
            "SaaStr Annual Booth",
            "Dreamforce Side Event",
            "Berlin Roadshow",
            "London Summit",
            "Customer Dinner NYC",
        ],
    ),
    (
        "Webinar Series",
        "webinar",
        2,
        "growth",
        None,
        [
            "Webinar: Pipeline Math",
            "Webinar: Attribution 101",
            "Webinar: Budget Planning",
            "Webinar: Product Launch",
        ],
    ),
    (
        "Content Hub",
        "content",
        2,
        "growth",
        None,
        ["Ebook: State of RevOps", "Benchmark Report 2026", "Blog Syndication"],
    ),
    (
        "Lifecycle Email",
        "email",
        4,
        "retention",
        None,
        ["Onboarding Nurture", "Expansion Nurture", "Newsletter", "Win-back"],
    ),
    (
        "Customer Advocacy",
        "referral",
        4,
        "retention",
        None,
        ["Referral Program", "Partner Co-marketing", "Review Sites"],
    ),
    ("Organic & Direct", "organic", 0, "growth", None, ["SEO", "Website Direct", "Community"]),
]

_DAILY_BUDGET_USD = {  # typical spend per day of a child campaign, by channel
    "paid_search": 420,
    "paid_social": 260,
    "display": 140,
    "video": 180,
}
_EVENT_COST = {"event": (18_000, 65_000), "webinar": (1_500, 6_000), "content": (2_000, 12_000)}
_AD_ACCOUNTS = {
    "google_ads": ("1234567890", "USD", "America/New_York"),
    "meta_ads": ("act_987654321", "EUR", "Europe/Berlin"),
    "linkedin_ads": ("508912345", "USD", "America/Los_Angeles"),
}
_FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Leo",
    "Mina",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
_LAST = [
    "Smith",
    "Garcia",
    "Müller",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "Dubois",
    "Rossi",
    "Larsen",
    "Novak",
    "Silva",
    "Khan",
    "Jensen",
    "Ivanova",
    "Walsh",
    "Haddad",
]
_COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Aperture",
]


@dataclass
class DemoWorld:
    """What the demo generated, with the records in load order."""

    as_of: datetime
    records: list[model.Record] = field(default_factory=list)
    fx_rates: list[model.FxRate] = field(default_factory=list)
    budgets: list[model.Budget] = field(default_factory=list)

    def count(self, record_type: type[model.Record]) -> int:
        return sum(1 for r in self.records if type(r) is record_type)

    def __iter__(self) -> Iterator[model.Record]:
        yield from self.records


def _money(value: float | int) -> Decimal:
    """Round a generated figure to cents; generation uses floats, money never does."""
    return Decimal(str(round(value, 2)))


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randrange(7, 20), rng.randrange(60)), tzinfo=UTC)


def build_world(*, seed: int = 7, as_of: date | None = None, scale: float = 1.0) -> DemoWorld:
    """Generate the world for the 365 days ending the day before ``as_of`` (default today).

    ``scale`` multiplies people and opportunities (benchmarks use 10x); campaigns stay the
    same. The same seed and as-of date always give the same world.
    """
    builder = _WorldBuilder(seed, as_of or datetime.now(UTC).date(), scale)
    # the order of the steps is the order of the random draws: the same seed, the same world
    builder.campaigns()
    builder.ad_spend()
    builder.expenses()
    builder.opportunities(builder.people())
    builder.fx_rates()
    builder.budgets()
    return builder.world


class _WorldBuilder:
    """The steps of :func:`build_world`, sharing one random generator and what each step
    made for the next."""

    def __init__(self, seed: int, as_of: date, scale: float) -> None:
        self.seed = seed
        self.scale = scale
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.end = as_of - timedelta(days=1)
        self.start = self.end - timedelta(days=364)
        self.world = DemoWorld(as_of=datetime.combine(as_of, time(6, 0), tzinfo=UTC))
        self.campaign_list: list[model.Campaign] = []
        self.ad_campaigns: list[tuple[model.AdCampaign, model.Campaign]] = []
        self.touch_campaigns: list[model.Campaign] = []
        self.person_no = self.touch_no = self.role_no = 0

    def campaigns(self) -> None:
        rng = self.rng
        start = self.start
        end = self.end
        add = self.world.records.append
        campaigns: list[model.Campaign] = []
        ad_campaigns: list[tuple[model.AdCampaign, model.Campaign]] = []
        serial = 0
        for p_index, (program, channel, dept, category, platform, children) in enumerate(_PROGRAMS):
            owner_id, owner_name, department = _OWNERS[dept]
            parent_id = f"701D0000Prog{p_index:03d}"
            parent = model.Campaign(
                source=CRM,
                external_id=parent_id,
                name=program,
                channel=channel,
                status="In Progress",
                type="Program",
                start_date=start,
                end_date=end + timedelta(days=60),
                currency=REPORTING_CURRENCY,
                owner_id=owner_id,
                owner_name=owner_name,
                department=department,
                budget_category=category,
                created_at=_at(start - timedelta(days=30), rng),
            )
            campaigns.append(parent)
            for child in children:
                serial += 1
                campaign, ad_campaign = self.child_campaign(serial, child, parent, platform)
                campaigns.append(campaign)
                if ad_campaign is not None:
                    ad_campaigns.append((ad_campaign, campaign))
        # One ad campaign nobody mapped: the report must show its spend as unmapped.
        account_id, currency, tz = _AD_ACCOUNTS["meta_ads"]
        orphan = model.AdCampaign(
            source="meta_ads",
            external_id="23851234567890",
            account_id=account_id,
            name="Test - Holiday Promo (unmapped)",
            status="ACTIVE",
            currency=currency,
            timezone=tz,
        )
        for campaign in campaigns:
            add(campaign)
        for ad_campaign, _ in ad_campaigns:
            add(ad_campaign)
        add(orphan)
        self.campaign_list, self.ad_campaigns, self.orphan = campaigns, ad_campaigns, orphan

    def child_campaign(
        self, serial: int, name: str, parent: model.Campaign, platform: str | None
    ) -> tuple[model.Campaign, model.AdCampaign | None]:
        """One campaign of a program (its dates, planned and actual cost), and its ad
        platform campaign when it runs ads."""
        rng, start, end, as_of = self.rng, self.start, self.end, self.as_of
        child, channel, parent_id = name, parent.channel, parent.external_id
        owner_id, owner_name = parent.owner_id, parent.owner_name
        department, category = parent.department, parent.budget_category
        c_start = start + timedelta(days=rng.randrange(0, 200))
        if channel in ("event", "webinar"):
            c_end = c_start + timedelta(days=rng.randrange(1, 4))
        else:
            c_end = min(c_start + timedelta(days=rng.randrange(90, 330)), end + timedelta(60))
        ad_ref = None
        if platform is not None:
            ad_ref = f"{20_000_000 + serial * 7919}"
        days = (c_end - c_start).days + 1
        planned = _DAILY_BUDGET_USD.get(channel, 0) * days if platform else 0
        if channel in _EVENT_COST:
            planned = rng.randrange(*_EVENT_COST[channel])
        campaign = model.Campaign(
            source=CRM,
            external_id=f"701D000000C{serial:04d}",
            name=child,
            channel=channel,
            parent_id=parent_id,
            status="Completed" if c_end < as_of else "In Progress",
            type={
                "event": "Conference",
                "webinar": "Webinar",
                "email": "Email",
                "content": "Content",
            }.get(channel, "Advertisement" if platform else "Other"),
            start_date=c_start,
            end_date=c_end,
            budgeted_cost=_money(planned * rng.uniform(0.9, 1.25)) if planned else None,
            actual_cost=(
                _money(rng.randrange(500, 4000)) if channel in ("email", "referral") else None
            ),
            currency=REPORTING_CURRENCY,
            owner_id=owner_id,
            owner_name=owner_name,
            department=department,
            budget_category=category,
            ad_campaign_ref=ad_ref,
            created_at=_at(c_start - timedelta(days=rng.randrange(5, 40)), rng),
        )
        if platform is None or ad_ref is None:
            return campaign, None
        account_id, currency, tz = _AD_ACCOUNTS[platform]
        ad_campaign = model.AdCampaign(
            source=platform,
            external_id=ad_ref,
            account_id=account_id,
            name=f"{child} | {platform.split('_')[0].title()}",
            status="ENABLED" if c_end >= as_of else "PAUSED",
            currency=currency,
            timezone=tz,
        )
        return campaign, ad_campaign

    def ad_spend(self) -> None:
        rng = self.rng
        start = self.start
        end = self.end
        as_of = self.as_of
        add = self.world.records.append
        campaigns, ad_campaigns, orphan = self.campaign_list, self.ad_campaigns, self.orphan
        hot = next(c for c in campaigns if c.name == "Meta Lead Forms - Ebook")
        hot.start_date = min(hot.start_date or start, Period.parse(_quarter(as_of)).start)
        hot.end_date = max(hot.end_date or end, Period.parse(_quarter(as_of)).end)
        for ad_campaign, campaign in [*ad_campaigns, (orphan, None)]:
            base = _DAILY_BUDGET_USD.get(campaign.channel if campaign else "paid_social", 200)
            eur = ad_campaign.currency == "EUR"
            c_start = campaign.start_date if campaign else end - timedelta(days=45)
            c_end = min(campaign.end_date if campaign else end, end)
            assert c_start is not None and c_end is not None
            day = c_start
            while day <= c_end:
                weekday = 0.6 if day.weekday() >= 5 else 1.0
                boost = 2.6 if campaign is hot and day >= end - timedelta(days=30) else 1.0
                spend = base * weekday * boost * rng.uniform(0.75, 1.25) / (1.09 if eur else 1.0)
                impressions = int(spend * rng.uniform(60, 140))
                clicks = int(impressions * rng.uniform(0.008, 0.03))
                add(
                    model.AdSpendDay(
                        source=ad_campaign.source,
                        external_id=model.AdSpendDay.key(
                            ad_campaign.account_id, ad_campaign.external_id, day
                        ),
                        account_id=ad_campaign.account_id,
                        ad_campaign_id=ad_campaign.external_id,
                        day=day,
                        spend=_money(spend),
                        currency=ad_campaign.currency or "USD",
                        impressions=impressions,
                        clicks=clicks,
                        conversions=Decimal(str(round(clicks * rng.uniform(0.02, 0.08), 2))),
                    )
                )
                day += timedelta(days=1)

    def expenses(self) -> None:
        rng = self.rng
        start = self.start
        end = self.end
        add = self.world.records.append
        campaigns = self.campaign_list
        expense_no = 0
        for campaign in campaigns:
            if campaign.channel not in _EVENT_COST or campaign.parent_id is None:
                continue
            assert campaign.start_date is not None and campaign.budgeted_cost is not None
            pieces = rng.randrange(2, 5)
            for piece in range(pieces):
                expense_no += 1
                status = "approved" if piece < pieces - 1 or rng.random() < 0.6 else "requested"
                if rng.random() < 0.05:
                    status = "rejected"
                currency = "EUR" if "Berlin" in campaign.name else "USD"
                amount = (
                    campaign.budgeted_cost / pieces * Decimal(str(round(rng.uniform(0.8, 1.1), 3)))
                )
                if currency == "EUR":
                    amount /= Decimal("1.08")
                incurred = min(campaign.start_date - timedelta(days=rng.randrange(0, 45)), end)
                add(
                    model.Expense(
                        source="demo_finance",
                        external_id=f"EXP-{expense_no:05d}",
                        campaign_source=CRM,
                        campaign_id=campaign.external_id,
                        incurred_on=max(incurred, start),
                        amount=amount.quantize(Decimal("0.01")),
                        currency=currency,
                        status=status,
                        description=["Booth and stand", "Agency fee", "Catering", "Swag", "Travel"][
                            piece % 5
                        ],
                        vendor=rng.choice(
                            ["Eventbrite", "Freeman", "Stagecraft GmbH", "Contently"]
                        ),
                        requested_by=campaign.owner_name,
                        decided_by="finance@demo.example" if status != "requested" else None,
                        decided_at=_at(incurred, rng) if status != "requested" else None,
                    )
                )

    def people(self) -> list[tuple[model.Person, list[tuple[datetime, model.Campaign]]]]:
        rng = self.rng
        start = self.start
        world = self.world
        add = self.world.records.append
        campaigns, seed, scale = self.campaign_list, self.seed, self.scale
        touch_campaigns = [c for c in campaigns if c.parent_id is not None]
        weights = [
            {
                "paid_search": 9,
                "paid_social": 7,
                "display": 3,
                "video": 2,
                "event": 3,
                "webinar": 5,
                "content": 6,
                "email": 6,
                "referral": 2,
                "organic": 8,
            }.get(c.channel, 2)
            for c in touch_campaigns
        ]
        n_people = int(5000 * scale)
        # How many touches come before the lead is created (ads, events and content tracked by
        # marketing automation before the form fill), so lead creation is not always the first
        # touch. A generator of its own keeps the rest of the world as the seed always made it.
        before_rng = random.Random(seed * 7919 + 1)
        person_no = touch_no = role_no = 0
        converters: list[tuple[model.Person, list[tuple[datetime, model.Campaign]]]] = []
        for _ in range(n_people):
            person_no += 1
            created_day = start + timedelta(days=int(rng.triangular(0, 364, 300)))
            created = _at(created_day, rng)
            company = f"{rng.choice(_COMPANIES)} {rng.choice(['Inc', 'GmbH', 'Ltd', 'SA', 'KK'])}"
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            lead_id = f"00QD0000{person_no:07d}"
            n_touch = 1 + min(int(rng.expovariate(0.45)), 9)
            n_before = 1 + (before_rng.random() < 0.45) + (before_rng.random() < 0.2)
            touches: list[tuple[datetime, model.Campaign]] = []
            for k in range(n_touch):
                offset = (
                    timedelta(days=rng.uniform(-60, 0))
                    if k < n_before
                    else timedelta(days=rng.uniform(0, 120))
                )
                when = min(created + offset, world.as_of - timedelta(hours=1))
                campaign = rng.choices(touch_campaigns, weights)[0]
                touches.append((when, campaign))
            touches.sort(key=lambda t: t[0])
            stage_roll = rng.random() + 0.04 * len(touches)
            stage = "lead" if stage_roll < 0.55 else "mql" if stage_roll < 0.8 else "sql"
            lead = model.Person(
                source=CRM,
                external_id=lead_id,
                kind="lead",
                email=f"{first}.{last}{person_no}@{company.split()[0].lower()}.example".lower(),
                first_name=first,
                last_name=last,
                company=company,
                created_at=created,
                lifecycle_stage=stage,
                lead_source=touches[0][1].channel,
                mql_at=created + timedelta(days=3) if stage != "lead" else None,
                sql_at=created + timedelta(days=12) if stage == "sql" else None,
            )
            for when, campaign in touches:
                touch_no += 1
                add(
                    model.Touchpoint(
                        source=CRM,
                        external_id=f"00vD000{touch_no:08d}",
                        person_source=CRM,
                        person_id=lead_id,
                        campaign_source=CRM,
                        campaign_id=campaign.external_id,
                        occurred_at=when,
                        kind="event_attendance"
                        if campaign.channel == "event"
                        else "campaign_member",
                        responded=rng.random() < 0.9,
                    )
                )
            if stage == "sql" and rng.random() < 0.85:
                converters.append((lead, touches))
            add(lead)
        self.touch_campaigns = touch_campaigns
        self.person_no, self.touch_no, self.role_no = person_no, touch_no, role_no
        return converters

    def opportunities(
        self, converters: list[tuple[model.Person, list[tuple[datetime, model.Campaign]]]]
    ) -> None:
        rng = self.rng
        as_of = self.as_of
        world = self.world
        add = self.world.records.append
        scale = self.scale
        person_no, touch_no, role_no = self.person_no, self.touch_no, self.role_no
        n_opps = int(500 * scale)
        rng.shuffle(converters)
        for opp_no, (lead, touches) in enumerate(converters[:n_opps], start=1):
            assert lead.created_at is not None
            contact_id = f"003D0000{opp_no:07d}"
            opp_id = f"006D0000{opp_no:07d}"
            converted_at = max(lead.created_at + timedelta(days=rng.uniform(5, 40)), touches[0][0])
            converted_at = min(converted_at, world.as_of - timedelta(days=1))
            lead.lifecycle_stage = "opportunity"
            lead.converted_contact_id = contact_id
            lead.converted_opportunity_id = opp_id
            lead.converted_at = converted_at
            add(
                model.Person(
                    source=CRM,
                    external_id=contact_id,
                    kind="contact",
                    email=lead.email,
                    first_name=lead.first_name,
                    last_name=lead.last_name,
                    company=lead.company,
                    created_at=converted_at,
                    lifecycle_stage="opportunity",
                    mql_at=lead.mql_at,
                    sql_at=lead.sql_at,
                )
            )
            cycle = timedelta(days=rng.uniform(20, 150))
            close = (converted_at + cycle).date()
            closed = close < as_of and rng.random() < 0.85
            won = closed and rng.random() < 0.32 + 0.03 * len(touches)
            if not closed:
                close = max(close, as_of + timedelta(days=rng.randrange(5, 90)))
            eur = "GmbH" in (lead.company or "") or "SA" in (lead.company or "")
            amount = Decimal(rng.choice([12, 18, 24, 36, 48, 60, 90, 120, 240])) * 1000
            if rng.random() < 0.02:
                amount_value: Decimal | None = None  # reps leave amounts blank: counts as 0
            else:
                amount_value = (amount / Decimal("1.1")).quantize(Decimal("1")) if eur else amount
            if won:
                lead.lifecycle_stage = "customer"
            add(
                model.Opportunity(
                    source=CRM,
                    external_id=opp_id,
                    name=f"{lead.company} - Platform",
                    account_id=f"001D0000{opp_no:07d}",
                    account_name=lead.company,
                    amount=amount_value,
                    currency="EUR" if eur else "USD",
                    stage=("Closed Won" if won else "Closed Lost")
                    if closed
                    else rng.choice(["Discovery", "Evaluation", "Proposal", "Negotiation"]),
                    is_closed=closed,
                    is_won=won,
                    created_at=converted_at,
                    close_date=close,
                    primary_campaign_id=touches[-1][1].external_id,
                )
            )
            role_no += 1
            add(
                model.ContactRole(
                    source=CRM,
                    external_id=f"00KD0000{role_no:07d}",
                    opportunity_id=opp_id,
                    person_id=contact_id,
                    role="Decision Maker",
                    is_primary=True,
                )
            )
            # a second buyer on some deals, with their own later touches
            if rng.random() < 0.25:
                person_no, touch_no, role_no = self.second_buyer(
                    lead, opp_id, converted_at, (person_no, touch_no, role_no)
                )
        self.person_no, self.touch_no, self.role_no = person_no, touch_no, role_no

    def second_buyer(
        self,
        lead: model.Person,
        opp_id: str,
        converted_at: datetime,
        counters: tuple[int, int, int],
    ) -> tuple[int, int, int]:
        """Another contact on the deal, with a touch of their own after it opened."""
        rng, world, add = self.rng, self.world, self.world.records.append
        person_no, touch_no, role_no = counters
        person_no += 1
        touch_no += 1
        buyer_id = f"003D0001{person_no:07d}"
        add(
            model.Person(
                source=CRM,
                external_id=buyer_id,
                kind="contact",
                email=f"buyer{person_no}@{(lead.company or 'x').split()[0].lower()}.example",
                first_name=rng.choice(_FIRST),
                last_name=rng.choice(_LAST),
                company=lead.company,
                created_at=converted_at + timedelta(days=2),
                lifecycle_stage="opportunity",
            )
        )
        add(
            model.Touchpoint(
                source=CRM,
                external_id=f"00vD000{touch_no:08d}",
                person_source=CRM,
                person_id=buyer_id,
                campaign_source=CRM,
                campaign_id=rng.choice(self.touch_campaigns).external_id,
                occurred_at=min(
                    converted_at + timedelta(days=rng.uniform(3, 20)),
                    world.as_of - timedelta(hours=1),
                ),
                kind="campaign_member",
                responded=True,
            )
        )
        role_no += 1
        add(
            model.ContactRole(
                source=CRM,
                external_id=f"00KD0000{role_no:07d}",
                opportunity_id=opp_id,
                person_id=buyer_id,
                role="Evaluator",
                is_primary=False,
            )
        )
        return person_no, touch_no, role_no

    def fx_rates(self) -> None:
        rng = self.rng
        start = self.start
        as_of = self.as_of
        world = self.world
        month = date(start.year, start.month, 1)
        eur_rate = Decimal("1.0780")
        while month <= as_of:
            world.fx_rates.append(
                model.FxRate(
                    source="config",
                    external_id=f"EUR|{month.isoformat()}",
                    currency="EUR",
                    base_currency=REPORTING_CURRENCY,
                    start_date=month,
                    rate=eur_rate,
                )
            )
            eur_rate = (eur_rate * Decimal(str(round(rng.uniform(0.985, 1.015), 4)))).quantize(
                Decimal("0.0001")
            )
            month = (month + timedelta(days=32)).replace(day=1)

    def budgets(self) -> None:
        as_of = self.as_of
        world = self.world
        campaigns, ad_campaigns = self.campaign_list, self.ad_campaigns
        # Channel budgets for the current quarter, set the way a planner would: the run rate so
        # far plus headroom. Paid social gets less headroom than its lead-form push needs, so the
        # demo shows a channel heading over budget and the alerts that raises.
        quarter = _quarter(as_of)
        year = str(as_of.year)
        q = Period.parse(quarter)
        elapsed = max(q.days_elapsed(as_of), 1)
        so_far: dict[str, Decimal] = {}
        channel_of = {c.external_id: c.channel for c in campaigns}
        for ad_campaign, campaign in ad_campaigns:
            channel_of[ad_campaign.external_id] = campaign.channel
        for record in world.records:
            if isinstance(record, model.AdSpendDay) and record.day in q:
                channel = channel_of.get(record.ad_campaign_id)
                if channel is not None:
                    rate = Decimal("1.08") if record.currency == "EUR" else Decimal(1)
                    so_far[channel] = so_far.get(channel, Decimal(0)) + record.spend * rate
        for channel, spent in sorted(so_far.items()):
            projected = spent * q.days / elapsed
            headroom = Decimal("0.9") if channel == "paid_social" else Decimal("1.15")
            amount = (projected * headroom / 1000).quantize(Decimal("1")) * 1000
            world.budgets.append(_budget(f"channel:{channel}", quarter, amount))
        world.budgets.append(_budget("channel:event", year, 260_000))
        world.budgets.append(_budget("channel:webinar", year, 30_000))
        world.budgets.append(_budget("channel:content", year, 45_000))
        for department, amount in [
            ("Demand Generation", 700_000),
            ("Field Marketing", 380_000),
            ("Product Marketing", 150_000),
            ("Brand", 220_000),
            ("Customer Marketing", 90_000),
        ]:
            world.budgets.append(_budget(f"department:{department}", year, amount))
        world.budgets.append(_budget("total", year, 1_600_000))
        for category, share in [("strategic", "0.20"), ("growth", "0.50"), ("retention", "0.30")]:
            world.budgets.append(_budget(f"category:{category}", year, 1_600_000 * Decimal(share)))
        world.records.extend(world.fx_rates)
        world.records.extend(world.budgets)


def _domain(company: str | None) -> str:
    return (company or "x").split()[0].lower()


def _budget(scope: str, period: str, amount: int | Decimal) -> model.Budget:
    return model.Budget(
        source="config",
        external_id=model.Budget.key(scope, period),
        scope=scope,
        period=period,
        amount=Decimal(amount).quantize(Decimal("1")),
        currency=REPORTING_CURRENCY,
    )


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
