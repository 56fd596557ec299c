"""The input of the attribution engine: journeys and non-converting paths, as CSR arrays.

Whoever builds these from the store has already done the DESIGN section 4 selection: the
touches of each opportunity are those of its persons inside its window
(``created_at - lookback_days <= occurred_at <= cutoff``), sorted by
``(occurred_at, touchpoint id)``. The engine relies on that order and never re-sorts; the
validation here checks that times do not decrease inside a journey (ties keep the given order).

CSR layout: the touches of opportunity ``i`` are ``[offsets[i], offsets[i + 1])`` of the touch
arrays. All times are UTC epoch microseconds (int64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["Journeys", "Paths", "proportional_credits", "segment_sum"]


def _check_array(name: str, a: object, dtype: type, length: int | None = None) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {a.shape}")
    if length is not None and a.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {a.shape[0]}")


def _check_offsets(name: str, offsets: object, n_items: int) -> None:
    _check_array(name, offsets, np.int64)
    assert isinstance(offsets, np.ndarray)
    if offsets.shape[0] < 1:
        raise ValueError(f"{name} must have at least one element (n + 1 entries)")
    if offsets[0] != 0 or offsets[-1] != n_items:
        raise ValueError(
            f"{name} must start at 0 and end at the number of touches ({n_items}), "
            f"got {offsets[0]} .. {offsets[-1]}"
        )
    if offsets.shape[0] > 1 and np.any(offsets[1:] < offsets[:-1]):
        raise ValueError(f"{name} must be non-decreasing")


def _check_index(name: str, a: np.ndarray, n: int) -> None:
    if n < 0:
        raise ValueError(f"the number of {name} values must be >= 0, got {n}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
        raise ValueError(f"{name} indices must lie in [0, {n}), got {a.min()} .. {a.max()}")


def segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each CSR segment (0 for empty segments), float64 or int64.

    Uses ``np.add.reduceat`` over the non-empty segments only (``reduceat`` misbehaves on empty
    ones), which sums each segment on its own: no long cumulative sum, so no loss of precision.
    """
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.result_type(values.dtype, np.int64))
    starts = offsets[:-1]
    nonempty = offsets[1:] > starts
    if values.size:
        out[nonempty] = np.add.reduceat(values, starts[nonempty])
    return out


def proportional_credits(j: Journeys, weights: np.ndarray) -> np.ndarray:
    """Touch credits proportional to ``weights`` (float64[n_touches], >= 0), normalised per
    opportunity; an opportunity whose weights are all 0 gets 0 everywhere (unattributed)."""
    totals = np.repeat(segment_sum(weights, j.offsets), j.lengths)
    return np.divide(weights, totals, out=np.zeros(weights.shape[0]), where=totals > 0)


@dataclass(frozen=True, eq=False)
class Journeys:
    """One journey per opportunity (see the module docstring for the layout).

    ``opp_cutoff`` is the end of the close date for closed opportunities, else the as-of time;
    ``opp_person_created`` is the earliest ``created_at`` of the opportunity's persons.
    """

    offsets: np.ndarray  # int64[n_opps + 1]
    touch_time: np.ndarray  # int64[n_touches], epoch microseconds
    touch_campaign: np.ndarray  # int32[n_touches], 0..n_campaigns-1
    touch_channel: np.ndarray  # int16[n_touches], 0..n_channels-1
    opp_created: np.ndarray  # int64[n_opps]
    opp_person_created: np.ndarray  # int64[n_opps]
    opp_cutoff: np.ndarray  # int64[n_opps]
    opp_won: np.ndarray  # bool[n_opps]
    n_campaigns: int
    n_channels: int

    def __post_init__(self) -> None:
        _check_array("touch_time", self.touch_time, np.int64)
        n_touches = self.touch_time.shape[0]
        _check_offsets("offsets", self.offsets, n_touches)
        n_opps = self.offsets.shape[0] - 1
        _check_array("touch_campaign", self.touch_campaign, np.int32, n_touches)
        _check_array("touch_channel", self.touch_channel, np.int16, n_touches)
        _check_array("opp_created", self.opp_created, np.int64, n_opps)
        _check_array("opp_person_created", self.opp_person_created, np.int64, n_opps)
        _check_array("opp_cutoff", self.opp_cutoff, np.int64, n_opps)
        _check_array("opp_won", self.opp_won, np.bool_, n_opps)
        _check_index("touch_campaign", self.touch_campaign, int(self.n_campaigns))
        _check_index("touch_channel", self.touch_channel, int(self.n_channels))
        if n_touches > 1:
            # Times must not decrease inside a journey; a decrease across a journey boundary
            # is fine.
            decreasing = self.touch_time[1:] < self.touch_time[:-1]
            if decreasing.any():
                boundary = np.zeros(n_touches - 1, dtype=bool)
                inner = self.offsets[1:-1]
                inner = inner[(inner > 0) & (inner < n_touches)]
                boundary[inner - 1] = True
                if np.any(decreasing & ~boundary):
                    raise ValueError(
                        "touches must be sorted by (occurred_at, touch id) inside each journey"
                    )

    @property
    def n_opps(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def n_touches(self) -> int:
        return self.touch_time.shape[0]

    @cached_property
    def lengths(self) -> np.ndarray:
        """Number of touches of each opportunity (int64[n_opps])."""
        return np.diff(self.offsets)

    @cached_property
    def touch_opp(self) -> np.ndarray:
        """The opportunity index of each touch (int64[n_touches])."""
        return np.repeat(np.arange(self.n_opps, dtype=np.int64), self.lengths)

    def states(self, level: str) -> tuple[np.ndarray, int]:
        """The state of each touch at ``level`` ('campaign' or 'channel') and the state count."""
        if level == "campaign":
            return self.touch_campaign, int(self.n_campaigns)
        if level == "channel":
            return self.touch_channel, int(self.n_channels)
        raise ValueError(f"level must be 'campaign' or 'channel', got {level!r}")

    def won_paths(self, level: str) -> tuple[np.ndarray, np.ndarray]:
        """The journeys of won opportunities as CSR (offsets, states) at ``level``."""
        states, _ = self.states(level)
        lengths = self.lengths[self.opp_won]
        offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return offsets, states[np.repeat(self.opp_won, self.lengths)]

    @classmethod
    def from_lists(
        cls,
        touches: Sequence[Sequence[tuple[int, int, int]]],
        *,
        opp_created: Sequence[int],
        opp_person_created: Sequence[int],
        opp_cutoff: Sequence[int],
        opp_won: Sequence[bool],
        n_campaigns: int | None = None,
        n_channels: int | None = None,
    ) -> Journeys:
        """Build from Python lists (tests, small data).

        ``touches[i]`` is the journey of opportunity ``i``: ``(time_us, campaign, channel)``
        tuples, already in journey order. ``n_campaigns`` / ``n_channels`` default to one more
        than the largest index used.
        """
        flat = [t for journey in touches for t in journey]
        offsets = np.zeros(len(touches) + 1, dtype=np.int64)
        np.cumsum([len(journey) for journey in touches], out=offsets[1:])
        time = np.array([t[0] for t in flat], dtype=np.int64)
        campaign = np.array([t[1] for t in flat], dtype=np.int32)
        channel = np.array([t[2] for t in flat], dtype=np.int16)
        if n_campaigns is None:
            n_campaigns = int(campaign.max()) + 1 if campaign.size else 0
        if n_channels is None:
            n_channels = int(channel.max()) + 1 if channel.size else 0
        return cls(
            offsets=offsets,
            touch_time=time,
            touch_campaign=campaign,
            touch_channel=channel,
            opp_created=np.asarray(opp_created, dtype=np.int64).reshape(-1),
            opp_person_created=np.asarray(opp_person_created, dtype=np.int64).reshape(-1),
            opp_cutoff=np.asarray(opp_cutoff, dtype=np.int64).reshape(-1),
            opp_won=np.asarray(opp_won, dtype=np.bool_).reshape(-1),
            n_campaigns=n_campaigns,
            n_channels=n_channels,
        )


@dataclass(frozen=True, eq=False)
class Paths:
    """Non-converting paths for the data-driven models, as CSR.

    One path per person in no won opportunity: that person's touches, sorted like a journey.
    """

    offsets: np.ndarray  # int64[n_paths + 1]
    campaign: np.ndarray  # int32[n_path_touches]
    channel: np.ndarray  # int16[n_path_touches]

    def __post_init__(self) -> None:
        _check_array("campaign", self.campaign, np.int32)
        n = self.campaign.shape[0]
        _check_offsets("offsets", self.offsets, n)
        _check_array("channel", self.channel, np.int16, n)
        if n and (int(self.campaign.min()) < 0 or int(self.channel.min()) < 0):
            raise ValueError("campaign and channel indices must be >= 0")

    @property
    def n_paths(self) -> int:
        return self.offsets.shape[0] - 1

    def states(self, level: str) -> np.ndarray:
        """The state of each touch at ``level`` ('campaign' or 'channel')."""
        if level == "campaign":
            return self.campaign
        if level == "channel":
            return self.channel
        raise ValueError(f"level must be 'campaign' or 'channel', got {level!r}")

    @classmethod
    def empty(cls) -> Paths:
        return cls(
            offsets=np.zeros(1, dtype=np.int64),
            campaign=np.zeros(0, dtype=np.int32),
            channel=np.zeros(0, dtype=np.int16),
        )

    @classmethod
    def from_lists(cls, paths: Sequence[Sequence[tuple[int, int]]]) -> Paths:
        """Build from ``paths[k] = [(campaign, channel), ...]`` (tests, small data)."""
        flat = [t for path in paths for t in path]
        offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum([len(path) for path in paths], out=offsets[1:])
        return cls(
            offsets=offsets,
            campaign=np.array([t[0] for t in flat], dtype=np.int32),
            channel=np.array([t[1] for t in flat], dtype=np.int16),
        )
