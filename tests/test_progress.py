"""The progress bar: drawn on a terminal once work has taken a moment, never in a pipe."""

from __future__ import annotations

import io

import pytest

from virtwasi.terminal import progress as progress_module
from virtwasi.terminal.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module, "_clock", fake)
    monkeypatch.delenv("VIRTWASI_PROGRESS", raising=False)
    return fake


def test_long_work_on_a_terminal_draws_a_bar_and_ends_its_line(clock: Clock) -> None:
    screen = Terminal()
    with progress("uploading big.bin", 4 << 20, stream=screen) as bar:
        bar.advance(1 << 20)
        assert screen.getvalue() == ""  # nothing in the first half second
        clock.now += 1.0
        bar.advance(1 << 20)
        clock.now += 1.0
        bar.advance(2 << 20)
    drawn = screen.getvalue()
    assert "uploading big.bin [" in drawn
    assert " 50%  2.0 MiB/4.0 MiB" in drawn
    assert drawn.endswith("100%  4.0 MiB/4.0 MiB  2.0 MiB/s\n")


def test_short_work_leaves_nothing(clock: Clock) -> None:
    screen = Terminal()
    with progress("copying up f", 100, stream=screen) as bar:
        bar.advance(100)
    assert screen.getvalue() == ""


def test_a_pipe_stays_quiet_however_long(clock: Clock) -> None:
    pipe = io.StringIO()
    with progress("indexing a.tar", 3, unit="members", stream=pipe) as bar:
        for _ in range(3):
            clock.now += 10
            bar.advance(1)
    assert pipe.getvalue() == ""


def test_the_environment_overrides_the_terminal_check(
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_PROGRESS", "never")
    screen = Terminal()
    with progress("x", 2, unit="members", stream=screen) as bar:
        clock.now += 10
        bar.advance(2)
    assert screen.getvalue() == ""
    monkeypatch.setenv("VIRTWASI_PROGRESS", "always")
    pipe = io.StringIO()
    with progress("x", 2, unit="members", stream=pipe) as bar:
        clock.now += 10
        bar.advance(2)
    assert pipe.getvalue().endswith("100%  2 members/2 members\n")
