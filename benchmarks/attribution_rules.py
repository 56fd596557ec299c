"""Benchmark: every rule-based attribution model over 1,000,000 opportunities / 10,000,000 touches.

    python benchmarks/attribution_rules.py [--opps N] [--touches N] [--seed S] [--allocate]

Generates seeded journeys (lengths 1..19, times sorted inside each journey, person and
opportunity creation somewhere inside the journey, about 30 % won), then runs all the models of
``connector.attribution.MODELS`` one after the other and prints the seconds per model, the
total, the peak RSS (``resource.getrusage``, whole process, data generation included) and the
touches per second. Target: <= 10 s total and <= 2 GiB peak on two cores. ``--allocate`` then
also times :func:`allocate` on the ``w_shaped`` credits (not part of the target; most of its
time is ``connector.money.split_minor_grouped``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from connector.attribution import MODELS, Journeys, allocate, milestones, rule_credits

US_PER_DAY = 86_400_000_000
CUSTOM = {"ft": 0.3, "lc": 0.2, "oc": 0.2, "cw": 0.2, "rest": 0.1}


def make_journeys(n_opps: int, n_touches: int, seed: int) -> Journeys:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 20, n_opps)
    # Nudge lengths (staying in 1..19) until they add up to exactly n_touches.
    diff = n_touches - int(lengths.sum())
    while diff:
        pick = rng.integers(0, n_opps, min(abs(diff), n_opps))
        step = 1 if diff > 0 else -1
        pick = np.unique(pick)
        pick = pick[(lengths[pick] + step >= 1) & (lengths[pick] + step <= 19)][: abs(diff)]
        lengths[pick] += step
        diff = n_touches - int(lengths.sum())
    offsets = np.zeros(n_opps + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    start = rng.integers(0, 365 * US_PER_DAY, n_opps) + 1_700_000_000_000_000
    # Gaps of 0..10 days (0 allowed: ties), accumulated inside each journey.
    gaps = rng.integers(0, 10 * US_PER_DAY, n_touches)
    gaps[rng.random(n_touches) < 0.05] = 0
    gaps[offsets[:-1]] = 0
    cum = np.cumsum(gaps)
    time_ = cum - np.repeat(cum[offsets[:-1]], lengths) + np.repeat(start, lengths)
    del cum, gaps
    last = time_[offsets[1:] - 1]
    span = last - start
    person_created = start + (span * rng.random(n_opps) * 0.6).astype(np.int64)
    early = rng.random(n_opps) < 0.1  # no touch at or before person creation: LC falls back
    person_created[early] = start[early] - 1
    opp_created = person_created + (span * rng.random(n_opps) * 0.5).astype(np.int64)
    cutoff = last + rng.integers(0, 30 * US_PER_DAY, n_opps)
    return Journeys(
        offsets=offsets,
        touch_time=time_,
        touch_campaign=rng.integers(0, 5_000, n_touches, dtype=np.int32),
        touch_channel=rng.integers(0, 12, n_touches, dtype=np.int16),
        opp_created=opp_created,
        opp_person_created=person_created,
        opp_cutoff=cutoff,
        opp_won=rng.random(n_opps) < 0.3,
        n_campaigns=5_000,
        n_channels=12,
    )


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opps", type=int, default=1_000_000)
    parser.add_argument("--touches", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--allocate", action="store_true", help="also time allocate()")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    j = make_journeys(args.opps, args.touches, args.seed)
    print(
        f"generated {j.n_opps:,} opportunities, {j.n_touches:,} touches "
        f"in {time.perf_counter() - t0:.2f} s (not counted)"
    )

    timings: dict[str, float] = {}
    start = time.perf_counter()
    t = time.perf_counter()
    ms = milestones(j)
    timings["(milestones)"] = time.perf_counter() - t
    for model in MODELS:
        t = time.perf_counter()
        credits = rule_credits(j, model, custom=CUSTOM, ms=ms)
        timings[model] = time.perf_counter() - t
        del credits
    total = time.perf_counter() - start

    for name, sec in timings.items():
        print(f"  {name:<14} {sec:7.3f} s   {j.n_touches / sec / 1e6:8.1f} M touches/s")
    print(
        f"total (all {len(MODELS)} models) {total:.3f} s; "
        f"{len(MODELS) * j.n_touches / total / 1e6:.1f} M touch-credits/s, "
        f"{len(MODELS) * j.n_opps / total / 1e6:.2f} M opportunity-models/s"
    )
    peak = peak_mib()
    print(f"peak RSS {peak:.0f} MiB")
    ok = total <= 10.0 and peak <= 2048
    print("target (<= 10 s, <= 2048 MiB):", "met" if ok else "NOT met")

    if args.allocate:
        credits = rule_credits(j, "w_shaped", ms=ms)
        amounts = np.random.default_rng(args.seed).integers(0, 10_000_000, j.n_opps)
        t = time.perf_counter()
        alloc = allocate(j, credits, amounts)
        sec = time.perf_counter() - t
        print(
            f"allocate (w_shaped): {sec:.3f} s for {alloc.opp.shape[0]:,} pairs; "
            f"peak RSS {peak_mib():.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
