"""Narrated transcripts for scenarios: steps, side-by-side columns and checked claims."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

WIDTH = 88


class Narration:
    """Prints a scenario's story and keeps score of its claims.

    ``finish()`` returns the process exit code: 0 when every claim held, 1 otherwise, so a
    scenario that stops demonstrating what it says fails loudly.
    """

    def __init__(self, title: str, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.failed: list[str] = []
        self.held = 0
        self._print("=" * WIDTH)
        self._print(title)
        self._print("=" * WIDTH)

    def _print(self, text: str = "") -> None:
        print(text.rstrip(), file=self.out, flush=True)

    def section(self, heading: str) -> None:
        self._print()
        self._print(f"-- {heading} " + "-" * max(0, WIDTH - len(heading) - 4))

    def say(self, text: str) -> None:
        """A paragraph of explanation, wrapped."""
        self._print(textwrap.fill(" ".join(text.split()), WIDTH))

    def step(self, actor: str, action: str, outcome: str) -> None:
        """One thing an instance did and what came of it."""
        self._print(f"  {actor:>10} | {action:<44} -> {outcome}")

    def columns(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A small table: the same question answered under several implementations."""
        widths = [
            max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))
        ]
        line = "  " + "-+-".join("-" * w for w in widths)
        self._print()
        self._print("  " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        self._print(line)
        for row in rows:
            self._print(
                "  " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            )

    def claim(self, text: str, holds: bool) -> bool:
        """State what the scenario shows; a claim that does not hold fails the scenario."""
        self._print(f"  [{'holds' if holds else 'FAILS'}] {text}")
        if holds:
            self.held += 1
        else:
            self.failed.append(text)
        return holds

    def finish(self) -> int:
        self._print()
        if self.failed:
            self._print(f"{len(self.failed)} claim(s) did not hold:")
            for text in self.failed:
                self._print(f"  - {text}")
            return 1
        self._print(f"All {self.held} claims held.")
        return 0
