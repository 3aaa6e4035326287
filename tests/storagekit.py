"""Helpers shared by the storage backend tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from virtwasi.storage import File


def errno_of(action: Callable[[], object]) -> int:
    """The errno of the OSError ``action`` must raise."""
    with pytest.raises(OSError) as caught:
        action()
    assert caught.value.errno is not None
    return caught.value.errno


def read_all(f: File, chunk: int = 5) -> bytes:
    """Everything in ``f``, read in small chunks so that chunk boundaries get exercised."""
    out = bytearray()
    buf = bytearray(chunk)
    while n := f.readinto(memoryview(buf), len(out)):
        out += buf[:n]
    return bytes(out)


class SteppingClock:
    """A clock one second further on at every look: every advance of a bar draws."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now
