"""A progress bar for long host-side work (an upload, a copy-up, an archive index).

It draws on standard error only when that is a terminal, and only once the work has taken
longer than a moment, so short work and output to a pipe or a file stay quiet. The bar is
redrawn at most a few times a second: advancing it is cheap enough to call per chunk.
``VIRTWASI_PROGRESS=always`` or ``never`` overrides the terminal check.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

DELAY_S = 0.5  # work shorter than this never shows a bar
REDRAW_S = 0.1
WIDTH = 28
_clock = time.monotonic  # the one clock the bar reads, so it can be replaced


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """One piece of work of ``total`` units (bytes unless ``unit`` says otherwise)."""

    def __init__(self, label: str, total: int, *, unit: str = "bytes",
                 stream: TextIO | None = None, force: bool | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        if force is None:
            setting = os.environ.get("VIRTWASI_PROGRESS", "auto")
            force = {"always": True, "never": False}.get(setting)
        self.visible = self._is_terminal() if force is None else force
        self._started = _clock()
        self._drawn_at = 0.0
        self._drawn = False
        self.note = ""  # drawn after the counts: what else the work wants to say

    def _is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _amount(self, n: int) -> str:
        return _size(n) if self.unit == "bytes" else f"{n} {self.unit}"

    def line(self) -> str:
        """The bar as it would be drawn now."""
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        elapsed = _clock() - self._started
        rate = ""
        if self.unit == "bytes" and elapsed > 0:
            rate = f"  {_size(self.done / elapsed)}/s"
        return (f"{self.label} [{bar}] {fraction * 100:3.0f}%  "
                f"{self._amount(self.done)}/{self._amount(self.total)}{rate}{self.note}")

    def advance(self, n: int) -> None:
        self.done += n
        if not self.visible:
            return
        now = _clock()
        if now - self._started < DELAY_S or now - self._drawn_at < REDRAW_S:
            return
        self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        self._drawn = True
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()

    def finish(self) -> None:
        """Leave the finished bar on its own line, if one was ever drawn."""
        if self._drawn:
            self._draw(_clock())
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def progress(label: str, total: int, *, unit: str = "bytes",
             stream: TextIO | None = None) -> Iterator[Progress]:
    """A :class:`Progress` for the work inside the ``with``; it finishes even on error."""
    bar = Progress(label, total, unit=unit, stream=stream)
    try:
        yield bar
    finally:
        bar.finish()
