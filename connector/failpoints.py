"""Crash injection for the crash-safety tests.

``CRM_ROI_FAILPOINT=<name>[:<n>]`` makes the process SIGKILL itself the n-th time (default
first) it reaches the named point, exactly as an OOM kill or a pulled plug would stop it:
no ``finally`` runs, no transaction commits. Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "CRM_ROI_FAILPOINT"


class _Counter:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}


_counter = _Counter()


def hit(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counter.seen[name] = _counter.seen.get(name, 0) + 1
    if _counter.seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
