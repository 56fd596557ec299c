"""Holding off the cyclic garbage collector while large acyclic structures are built.

Parsing a 7 MB API page creates hundreds of thousands of dicts and lists; normalizing it
creates as many records. CPython's collector runs after every 700 new container objects,
walks the young ones each time and, every so often, the whole heap. None of that finds
anything in a parsed JSON document or a list of records, which hold no reference cycles, yet
on the ad sync benchmark it was more than half of ``json.loads``' time. Pausing the
collector while such a structure is built and resuming it afterwards loses nothing: cycles
made elsewhere meanwhile are collected at the next run after the pause.

The collector is one per process, so this state is too: pauses from several threads
overlap, and the collector resumes when the last of them ends, and only if it was running
when the first began (a program that turned it off keeps it off).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector paused (reentrant, thread-safe)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
