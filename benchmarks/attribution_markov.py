"""Benchmark: exact Markov removal effects vs ChannelAttribution's Monte Carlo ``markov_model``.

    python benchmarks/attribution_markov.py [--paths N] [--seed S] [--precise] [--setup]

Generates 1,000,000 seeded journeys over 12 channels (lengths 1..10, channels drawn from a
first-order chain, conversion probability ``1 - prod(1 - q[channel])`` over the touches, so the
removal effects differ), then on the same data, in the same run:

- ours: :func:`connector.attribution.markov_removal_effects` on the raw paths (CSR arrays, one
  per journey), and again on the aggregated paths (unique paths with counts: its input);
- ChannelAttribution's ``markov_model`` (order 1, default parameters; ``--precise`` adds a
  second run with ``max_step=1000, nsim_start=1e7``) on the aggregated path strings with
  ``total_conversions`` / ``total_null``, its normal input.

It prints both times, the ratio (target: ours <= 1/6 of its time), and the largest relative
difference of attributed conversions per channel (theirs: ``total_conversions``; ours: total
conversions x RE_c / sum(RE)). Only the model calls are timed, not data preparation.

ChannelAttribution is GPL-3 and needs a compiler and matplotlib: it is never a dependency of
this project. It runs in a subprocess from its own venv, ``benchmarks/.venv-channelattribution``
(git-ignored); ``--setup`` creates it, or by hand::

    python3 -m venv benchmarks/.venv-channelattribution
    benchmarks/.venv-channelattribution/bin/pip install ChannelAttribution==2.2.5 matplotlib

Without that venv the script runs our side alone and says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from connector.attribution import markov_removal_effects

HERE = Path(__file__).resolve().parent
CA_VENV = HERE / ".venv-channelattribution"
CA_PYTHON = CA_VENV / "bin" / "python"
CA_SETUP = (
    f"{sys.executable} -m venv {CA_VENV} && "
    f"{CA_VENV}/bin/pip install ChannelAttribution==2.2.5 matplotlib"
)
N_CHANNELS = 12
MAX_LEN = 10

# Run inside ChannelAttribution's venv: argv = csv path, json kwargs, output json path.
CA_SCRIPT = r"""
import json, sys, time
import pandas as pd
from ChannelAttribution import markov_model
data = pd.read_csv(sys.argv[1], sep=";", dtype={"path": str})
kwargs = json.loads(sys.argv[2])
t = time.perf_counter()
res = markov_model(data, "path", "total_conversions", var_null="total_null", out_more=True,
                   verbose=False, flg_pro=False, **kwargs)
seconds = time.perf_counter() - t
result, effects = res["result"], res["removal_effects"]
re_col = [c for c in effects.columns if c.startswith("removal_effect")][0]
with open(sys.argv[3], "w") as f:
    json.dump({
        "seconds": seconds,
        "conversions": dict(zip(result["channel_name"], map(float, result["total_conversions"]))),
        "removal_effects": dict(zip(effects["channel_name"], map(float, effects[re_col]))),
    }, f)
"""


def make_paths(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lengths, states[n, MAX_LEN] padded with -1, converted[n])."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAX_LEN + 1, n)
    initial = rng.dirichlet(np.ones(N_CHANNELS))
    transition = rng.dirichlet(np.full(N_CHANNELS, 0.5), N_CHANNELS)
    # 20 % of the time a touch repeats the previous channel (collapsed by the model).
    transition = 0.8 * transition + 0.2 * np.eye(N_CHANNELS)
    cum_t = np.cumsum(transition, axis=1)
    states = np.full((n, MAX_LEN), -1, dtype=np.int64)
    states[:, 0] = np.searchsorted(np.cumsum(initial), rng.random(n) * 0.999999999)
    for k in range(1, MAX_LEN):
        u = rng.random(n)[:, None]
        nxt = (u > cum_t[states[:, k - 1]]).sum(axis=1)
        states[:, k] = np.where(k < lengths, np.minimum(nxt, N_CHANNELS - 1), -1)
    q = np.linspace(0.004, 0.08, N_CHANNELS)
    rng.shuffle(q)
    miss = np.prod(np.where(states >= 0, 1 - q[np.maximum(states, 0)], 1.0), axis=1)
    converted = rng.random(n) < 1 - miss
    return lengths, states, converted


def to_csr(lengths: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, states[states >= 0]


def aggregate(lengths, states, converted):
    """Unique paths with their conversion and null counts."""
    base = N_CHANNELS + 1
    key = ((states + 1) * base ** np.arange(MAX_LEN, dtype=np.int64)).sum(axis=1)
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    conv = np.bincount(inverse, weights=converted, minlength=uniq.shape[0])
    null = np.bincount(inverse, weights=~converted, minlength=uniq.shape[0])
    return lengths[first], states[first], conv, null


def run_channelattribution(csv: Path, kwargs: dict, workdir: Path) -> dict | None:
    out = workdir / "ca.json"
    proc = subprocess.run(
        [str(CA_PYTHON), "-c", CA_SCRIPT, str(csv), json.dumps(kwargs), str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"ChannelAttribution failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return None
    return json.loads(out.read_text())


def compare(
    label: str,
    ours_seconds: float,
    ours_conv: np.ndarray,
    ours_re: np.ndarray,
    ca: dict,
    names: list[str],
) -> None:
    theirs = np.array([ca["conversions"][c] for c in names])
    theirs_re = np.array([ca["removal_effects"][c] for c in names])
    rel = np.abs(ours_conv - theirs) / theirs
    rel_re = np.abs(ours_re - theirs_re) / theirs_re
    print(
        f"ChannelAttribution {label}: {ca['seconds']:.3f} s; ours / theirs = "
        f"{ours_seconds / ca['seconds']:.4f} (1/{ca['seconds'] / ours_seconds:.0f}); "
        f"target <= 1/6: {'met' if ours_seconds * 6 <= ca['seconds'] else 'NOT met'}"
    )
    print(
        f"  largest relative difference of attributed conversions per channel: "
        f"{rel.max():.4%} ({names[int(rel.argmax())]}); of removal effects: {rel_re.max():.4%}"
    )
    print("  channel   ours conv   theirs conv   ours RE    theirs RE")
    for i, c in enumerate(names):
        print(
            f"  {c:<8} {ours_conv[i]:11.1f} {theirs[i]:13.1f}   {ours_re[i]:.5f}   "
            f"{theirs_re[i]:.5f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--precise",
        action="store_true",
        help="also run ChannelAttribution with max_step=1000, nsim_start=1e7",
    )
    parser.add_argument(
        "--setup",
        action="store_true",
        help=f"create {CA_VENV.name} with ChannelAttribution, then run",
    )
    args = parser.parse_args(argv)

    if args.setup and not CA_PYTHON.exists():
        subprocess.run(CA_SETUP, shell=True, check=True)

    t = time.perf_counter()
    lengths, states, converted = make_paths(args.paths, args.seed)
    conv_off, conv_st = to_csr(lengths[converted], states[converted])
    null_off, null_st = to_csr(lengths[~converted], states[~converted])
    total_conversions = int(converted.sum())
    print(
        f"generated {args.paths:,} paths ({int(lengths.sum()):,} touches, {N_CHANNELS} channels,"
        f" {total_conversions:,} conversions) in {time.perf_counter() - t:.2f} s"
    )

    t = time.perf_counter()
    re = markov_removal_effects(conv_off, conv_st, null_off, null_st, N_CHANNELS)
    ours_raw = time.perf_counter() - t
    re_again = markov_removal_effects(conv_off, conv_st, null_off, null_st, N_CHANNELS)
    assert re.tobytes() == re_again.tobytes(), "not deterministic"

    a_len, a_states, a_conv, a_null = aggregate(lengths, states, converted)
    a_off, a_st = to_csr(a_len, a_states)
    t = time.perf_counter()
    re_agg = markov_removal_effects(a_off, a_st, a_off, a_st, N_CHANNELS, a_conv, a_null)
    ours_agg = time.perf_counter() - t
    print(
        f"ours (exact): {ours_raw:.3f} s on the {args.paths:,} raw paths, {ours_agg:.3f} s on "
        f"the {a_len.shape[0]:,} aggregated paths; max |RE raw - RE aggregated| = "
        f"{np.abs(re - re_agg).max():.1e}"
    )
    ours_conv = total_conversions * re / re.sum()
    names = [f"ch{c:02d}" for c in range(N_CHANNELS)]
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if not CA_PYTHON.exists():
        print(
            f"\nChannelAttribution is not set up, so only our side ran. To compare, run once:\n"
            f"  {CA_SETUP}\n(or pass --setup)."
        )
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        csv = workdir / "paths.csv"
        with csv.open("w") as f:
            f.write("path;total_conversions;total_null\n")
            for row, c, nl in zip(a_states.tolist(), a_conv.tolist(), a_null.tolist(), strict=True):
                path = " > ".join(names[s] for s in row if s >= 0)
                f.write(f"{path};{int(c)};{int(nl)}\n")
        runs = [("default", {"order": 1})]
        if args.precise:
            runs.append(
                (
                    "precise (max_step=1000, nsim_start=1e7)",
                    {"order": 1, "max_step": 1000, "nsim_start": 1e7},
                )
            )
        for label, kwargs in runs:
            ca = run_channelattribution(csv, kwargs, workdir)
            if ca is not None:
                compare(label, ours_raw, ours_conv, re, ca, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
