"""``wasi:clocks``: the monotonic clock (with its pollables) and the wall clock.

Both read the host clocks preview 1 reads (``time.monotonic_ns``, ``time.time_ns``) and
report preview 1's resolution. ``wasi:clocks/timezone`` is unstable in WASI 0.2 and not
served, as wasmtime serves it only behind a flag.
"""

from __future__ import annotations

import time
from typing import Any

from ..component.hosting import HostInterface
from ..wasi.common import CLOCK_RESOLUTION_NS
from .io import Io

NS = 10**9


def datetime(ns: int) -> dict[str, int]:
    """A ``datetime`` record: whole seconds and nanoseconds since the epoch (``ns`` >= 0)."""
    return {"seconds": ns // NS, "nanoseconds": ns % NS}


def datetime_or_none(ns: int) -> dict[str, int] | None:
    """An ``option<datetime>``: none for a time before the epoch, which a ``datetime``
    cannot hold (wasmtime reports such a time as missing)."""
    return datetime(ns) if ns >= 0 else None


def nanoseconds(when: dict[str, int]) -> int:
    return int(when["seconds"]) * NS + int(when["nanoseconds"])


def interfaces(io: Io) -> dict[str, HostInterface]:
    monotonic: dict[str, Any] = {
        "now": time.monotonic_ns,
        "resolution": lambda: CLOCK_RESOLUTION_NS,
        "subscribe-instant": io.new_clock,
        "subscribe-duration": lambda duration: io.new_clock(time.monotonic_ns() + duration),
    }
    wall: dict[str, Any] = {
        "now": lambda: datetime(time.time_ns()),
        "resolution": lambda: datetime(CLOCK_RESOLUTION_NS),
    }
    return {
        "wasi:clocks/monotonic-clock": HostInterface(monotonic, {"pollable": io.pollable}),
        "wasi:clocks/wall-clock": HostInterface(wall),
    }
