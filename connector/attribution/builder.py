"""Opportunity journeys from the normalized records (DESIGN section 4, "Touchpoints").

A lead and the contact it was converted into are one person; a person's ``created_at`` is
the earliest creation time of its records. An opportunity's persons are its contact roles
and the leads converted into it or into those contacts. Its journey is their touches with
``opportunity.created_at - lookback <= occurred_at <= cutoff`` (cutoff: the end of the close
date in the connector's time zone for a closed opportunity, else the as-of time), sorted by
``(occurred_at, touchpoint id)``. Touches of campaigns that are not (or no longer) in the CRM
are left out, as are members that did not respond when ``responded_only`` is set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from connector import model
from connector.attribution import Journeys, Paths
from connector.store.dataset import Dataset

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

PersonKey = tuple[str, str]


def micros(value: datetime) -> int:
    """Exact epoch microseconds (no float on the way)."""
    return (value - _EPOCH) // _US


def end_of_day(day: object, tz: ZoneInfo) -> datetime:
    """The last microsecond of ``day`` in ``tz``, in UTC."""
    start_next = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)  # type: ignore[operator]
    return (start_next - _US).astimezone(UTC)


class People:
    """Union of lead and contact records into persons."""

    def __init__(self, persons: list[model.Person]) -> None:
        self._parent: dict[PersonKey, PersonKey] = {}
        self.records: dict[PersonKey, model.Person] = {}
        for person in persons:
            key = (person.source, person.external_id)
            self.records[key] = person
            self._parent.setdefault(key, key)
        for person in persons:
            if person.converted_contact_id:
                self._union(
                    (person.source, person.external_id),
                    (person.source, person.converted_contact_id),
                )
        self.created: dict[PersonKey, datetime] = {}
        for key, person in self.records.items():
            if person.created_at is None:
                continue
            root = self.root(key)
            if root not in self.created or person.created_at < self.created[root]:
                self.created[root] = person.created_at

    def root(self, key: PersonKey) -> PersonKey:
        parent = self._parent.get(key)
        if parent is None:
            self._parent[key] = key
            return key
        while parent != self._parent[parent]:
            self._parent[parent] = self._parent[self._parent[parent]]
            parent = self._parent[parent]
        return parent

    def _union(self, a: PersonKey, b: PersonKey) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            # the smaller key wins so the result does not depend on input order
            if rb < ra:
                ra, rb = rb, ra
            self._parent[rb] = ra


@dataclass
class AttributionInput:
    """The engine's input plus the keys to map its indices back to records."""

    journeys: Journeys
    nonconverting: Paths
    campaigns: list[model.Campaign]  # index -> campaign
    channels: tuple[str, ...]
    opportunities: list[model.Opportunity]  # index -> opportunity
    opp_persons: list[list[PersonKey]]
    people: People
    first_touch: dict[PersonKey, tuple[datetime, int]]  # person -> (time, campaign index)


def build(
    data: Dataset,
    *,
    as_of: datetime,
    tz: ZoneInfo,
    lookback_days: int,
    responded_only: bool = True,
) -> AttributionInput:
    campaigns = sorted(data.campaigns, key=lambda c: (c.source, c.external_id))
    campaign_index = {(c.source, c.external_id): i for i, c in enumerate(campaigns)}
    channels = model.CHANNELS
    channel_index = {name: i for i, name in enumerate(channels)}
    campaign_channel = np.asarray(
        [channel_index.get(c.channel, channel_index["other"]) for c in campaigns], dtype=np.int16
    )
    people = People(data.persons)
    touches = _touches_by_person(data, people, campaign_index, responded_only)
    opportunities = sorted(data.opportunities, key=lambda o: (o.source, o.external_id))
    journeys, opp_persons, won_roots = _journeys(
        opportunities,
        _opportunity_people(data),
        touches,
        people,
        campaign_channel,
        as_of=as_of,
        tz=tz,
        lookback=timedelta(days=lookback_days),
        n_campaigns=len(campaigns),
        n_channels=len(channels),
    )
    return AttributionInput(
        journeys=journeys,
        nonconverting=_nonconverting(touches, won_roots, as_of, campaign_channel),
        campaigns=campaigns,
        channels=channels,
        opportunities=opportunities,
        opp_persons=opp_persons,
        people=people,
        first_touch=_first_touches(touches),
    )


Touch = tuple[datetime, str, int]  # (occurred_at, touch id, campaign index)


def _touches_by_person(
    data: Dataset,
    people: People,
    campaign_index: dict[tuple[str, str], int],
    responded_only: bool,
) -> dict[PersonKey, list[Touch]]:
    """Each person's touches (merged people under their root), in time order."""
    touches: dict[PersonKey, list[Touch]] = defaultdict(list)
    for tp in data.touchpoints:
        if responded_only and not tp.responded:
            continue
        index = campaign_index.get((tp.campaign_source, tp.campaign_id))
        if index is None:
            continue
        root = people.root((tp.person_source, tp.person_id))
        touches[root].append((tp.occurred_at, str(tp.external_id), index))
    for items in touches.values():
        items.sort(key=lambda t: (t[0], t[1]))
    return touches


def _first_touches(touches: dict[PersonKey, list[Touch]]) -> dict[PersonKey, tuple[datetime, int]]:
    return {root: (items[0][0], items[0][2]) for root, items in touches.items()}


def _opportunity_people(data: Dataset) -> dict[tuple[str, str], list[PersonKey]]:
    """Who is in each opportunity: its contact roles and the leads converted into it."""
    people: dict[tuple[str, str], list[PersonKey]] = defaultdict(list)
    for role in data.contact_roles:
        people[(role.source, role.opportunity_id)].append((role.source, role.person_id))
    for person in data.persons:
        if person.converted_opportunity_id:
            people[(person.source, person.converted_opportunity_id)].append(
                (person.source, person.external_id)
            )
    return people


def _journeys(
    opportunities: list[model.Opportunity],
    in_opportunity: dict[tuple[str, str], list[PersonKey]],
    touches: dict[PersonKey, list[Touch]],
    people: People,
    campaign_channel: np.ndarray,
    *,
    as_of: datetime,
    tz: ZoneInfo,
    lookback: timedelta,
    n_campaigns: int,
    n_channels: int,
) -> tuple[Journeys, list[list[PersonKey]], set[PersonKey]]:
    """Each opportunity's touches in its window (lookback before creation, to its close or
    the as-of time), as flat arrays; with the people of each and those in a won one."""
    offsets = [0]
    t_time: list[int] = []
    t_campaign: list[int] = []
    opp_created: list[int] = []
    opp_person_created: list[int] = []
    opp_cutoff: list[int] = []
    opp_won: list[bool] = []
    opp_persons: list[list[PersonKey]] = []
    won_roots: set[PersonKey] = set()
    for opp in opportunities:
        key = (opp.source, opp.external_id)
        roots = sorted({people.root(p) for p in in_opportunity.get(key, [])})
        opp_persons.append(roots)
        if opp.is_closed and opp.close_date is not None:
            cutoff = end_of_day(opp.close_date, tz)
        else:
            cutoff = as_of
        created = opp.created_at or cutoff
        window_start = created - lookback
        journey = sorted(
            (t for root in roots for t in touches.get(root, ()) if window_start <= t[0] <= cutoff),
            key=lambda t: (t[0], t[1]),
        )
        for occurred, _tid, index in journey:
            t_time.append(micros(occurred))
            t_campaign.append(index)
        offsets.append(len(t_time))
        person_created = [people.created[r] for r in roots if r in people.created]
        opp_created.append(micros(created))
        opp_person_created.append(
            micros(min(person_created)) if person_created else micros(created)
        )
        opp_cutoff.append(micros(cutoff))
        opp_won.append(bool(opp.is_won))
        if opp.is_won:
            won_roots.update(roots)
    campaign_arr = np.asarray(t_campaign, dtype=np.int32)
    journeys = Journeys(
        offsets=np.asarray(offsets, dtype=np.int64),
        touch_time=np.asarray(t_time, dtype=np.int64),
        touch_campaign=campaign_arr,
        touch_channel=campaign_channel[campaign_arr]
        if campaign_arr.size
        else np.zeros(0, dtype=np.int16),
        opp_created=np.asarray(opp_created, dtype=np.int64),
        opp_person_created=np.asarray(opp_person_created, dtype=np.int64),
        opp_cutoff=np.asarray(opp_cutoff, dtype=np.int64),
        opp_won=np.asarray(opp_won, dtype=np.bool_),
        n_campaigns=n_campaigns,
        n_channels=n_channels,
    )
    return journeys, opp_persons, won_roots


def _nonconverting(
    touches: dict[PersonKey, list[Touch]],
    won_roots: set[PersonKey],
    as_of: datetime,
    campaign_channel: np.ndarray,
) -> Paths:
    """Non-converting paths: every person with touches who is in no won opportunity."""
    p_offsets = [0]
    p_campaign: list[int] = []
    for root in sorted(touches):
        if root in won_roots:
            continue
        items = [t for t in touches[root] if t[0] <= as_of]
        if not items:
            continue
        p_campaign.extend(index for _, _, index in items)
        p_offsets.append(len(p_campaign))
    path_campaign = np.asarray(p_campaign, dtype=np.int32)
    return Paths(
        offsets=np.asarray(p_offsets, dtype=np.int64),
        campaign=path_campaign,
        channel=campaign_channel[path_campaign]
        if path_campaign.size
        else np.zeros(0, dtype=np.int16),
    )
