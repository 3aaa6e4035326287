"""Interrupts and limits: SIGINT/SIGTERM, --timeout, --fuel and --max-memory end the guest
cleanly, through the command line (a separate process, signalled as a user would) and
through the Python API.

The fixture (fixtures/limits.c) never ends on its own: it computes forever, blocks reading
stdin, sleeps an hour, or allocates until memory runs out. Bounds on time are generous: they
only say that the guest stopped.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi.client import engine_flavor
from virtwasi.runtime import (
    DEFAULT_SIGNALS,
    GuestInterrupted,
    GuestOutOfFuel,
    GuestOutOfMemory,
    GuestStopped,
    GuestTimeout,
    Session,
    WasiWorld,
    run,
)

LIMITS = FIXTURES / "limits.wasm"
HELLO = FIXTURES / "hello.wasm"
STOPPED_WITHIN = 20  # seconds: generous, on a loaded machine; they stop in well under 1


def virtwasi(*args: str, stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "virtwasi", "run", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def signalled(proc: subprocess.Popen[bytes], *signums: int) -> tuple[int, str, str]:
    """Wait for the guest's first line (it is running), send ``signums``, and return the
    exit code, what followed on stdout, and stderr."""
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first, "the guest never started"
    for signum in signums:
        proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {STOPPED_WITHIN} s after {signums}")
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def open_pipe() -> Iterator[int]:
    """The read end of a pipe whose write end stays open: a read on it blocks."""
    read_end, write_end = os.pipe()
    yield read_end
    os.close(read_end)
    os.close(write_end)


def one_line(err: str, text: str) -> None:
    assert err == f"virtwasi: {text}\n", err
    assert "Traceback" not in err and "wasm backtrace" not in err


# -- signals, through the command line ----------------------------------------------------

@pytest.mark.parametrize("mode", ["spin", "sleep"])
@pytest.mark.parametrize(("signum", "code", "text"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_a_guest_computing_or_sleeping(mode: str, signum: int, code: int,
                                                       text: str) -> None:
    returncode, _, err = signalled(virtwasi(str(LIMITS), mode), signum)
    assert returncode == code
    one_line(err, text)


@pytest.mark.parametrize(("signum", "code", "text"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_a_guest_blocked_reading_stdin(open_pipe: int, signum: int, code: int,
                                                      text: str) -> None:
    returncode, out, err = signalled(virtwasi(str(LIMITS), "read", stdin=open_pipe), signum)
    assert returncode == code and out == ""
    one_line(err, text)


def test_a_second_ctrl_c_prints_no_traceback() -> None:
    returncode, _, err = signalled(virtwasi(str(LIMITS), "spin"), signal.SIGINT,
                                   signal.SIGINT)
    assert returncode == 130
    one_line(err, "interrupted")


def test_what_the_guest_wrote_and_closed_is_kept(tmp_path: Path) -> None:
    returncode, out, err = signalled(
        virtwasi("--dir", f"{tmp_path}::/data", str(LIMITS), "write", "/data/out.txt"),
        signal.SIGINT)
    assert returncode == 130 and out == ""
    one_line(err, "interrupted")
    assert (tmp_path / "out.txt").read_text() == "kept\n"


def test_a_copy_on_write_overlay_keeps_what_was_closed(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    (lower / "out.txt").write_text("old\n")
    returncode, _, _ = signalled(
        virtwasi("--dir", f"{lower}::/data", "--overlay", f"/data=file://{upper}",
                 str(LIMITS), "write", "/data/out.txt"),
        signal.SIGTERM)
    assert returncode == 143
    assert (upper / "out.txt").read_text() == "kept\n"
    assert (lower / "out.txt").read_text() == "old\n"


# -- limits, through the command line -----------------------------------------------------

def finished(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the limit did not stop the guest")
    return proc.returncode, out.decode(), err.decode()


def test_timeout_stops_a_computing_guest() -> None:
    code, out, err = finished(virtwasi("--timeout", "0.5", str(LIMITS), "spin"))
    assert code == 124 and out == "spinning\n"
    one_line(err, "timed out after 0.5 s")


def test_timeout_stops_a_guest_blocked_reading_stdin(open_pipe: int) -> None:
    code, _, err = finished(virtwasi("--timeout", "0.5", str(LIMITS), "read", stdin=open_pipe))
    assert code == 124
    one_line(err, "timed out after 0.5 s")


def test_fuel_stops_a_computing_guest() -> None:
    code, _, err = finished(virtwasi("--fuel", "1000000", str(LIMITS), "spin"))
    assert code == 152
    one_line(err, "out of fuel (the limit was 1000000)")


def test_enough_fuel_lets_a_program_finish() -> None:
    code, out, _ = finished(virtwasi("--fuel", "100000000", str(HELLO), "world"))
    assert code == 0 and out == "hello, world\n"


def test_max_memory_stops_a_guest_that_keeps_allocating() -> None:
    code, _, err = finished(virtwasi("--max-memory", "4M", str(LIMITS), "grow"))
    assert code == 137
    guest, ours = err.splitlines()
    assert guest.startswith("out of memory after")  # the guest saw malloc fail
    assert ours == "virtwasi: memory limit reached (4194304 bytes)"


def test_max_memory_below_what_the_module_starts_with() -> None:
    code, _, err = finished(virtwasi("--max-memory", "64K", str(LIMITS), "spin"))
    assert code == 137
    one_line(err, "memory limit reached (65536 bytes)")


def test_enough_memory_lets_a_program_finish() -> None:
    code, out, _ = finished(virtwasi("--max-memory", "1G", str(HELLO), "world"))
    assert code == 0 and out == "hello, world\n"


@pytest.mark.parametrize(("flag", "value"), [
    ("--timeout", "0"), ("--timeout", "soon"), ("--fuel", "-1"), ("--max-memory", "4X")])
def test_a_bad_limit_is_a_usage_error(flag: str, value: str) -> None:
    code, _, err = finished(virtwasi(flag, value, str(HELLO)))
    assert code == 2 and flag in err and "Traceback" not in err


def test_help_states_the_exit_codes() -> None:
    code, out, _ = finished(virtwasi("--help"))
    assert code == 0
    for exit_code in ("130, 143", "124", "152", "137"):
        assert exit_code in out


# -- the Python API -----------------------------------------------------------------------

def test_api_timeout() -> None:
    with pytest.raises(GuestTimeout) as stop:
        run(LIMITS, ["spin"], timeout=0.3)
    assert stop.value.exit_code == 124 and stop.value.seconds == 0.3


def test_api_timeout_wakes_a_sleeping_guest() -> None:
    with pytest.raises(GuestTimeout):
        run(LIMITS, ["sleep"], timeout=0.3)


def test_api_fuel() -> None:
    with pytest.raises(GuestOutOfFuel) as stop:
        run(LIMITS, ["spin"], fuel=100_000)
    assert stop.value.exit_code == 152 and stop.value.fuel == 100_000


def test_api_max_memory() -> None:
    with Session(LIMITS, ["grow"], max_memory=4 << 20) as session:
        with pytest.raises(GuestOutOfMemory) as stop:
            session.start()
        assert b"out of memory" in session.stderr
    assert stop.value.exit_code == 137 and stop.value.limit == 4 << 20


def test_api_limits_apply_to_every_client_of_a_world() -> None:
    with WasiWorld(timeout=0.3) as world:
        for _ in range(2):
            with pytest.raises(GuestTimeout):
                world.client(LIMITS, ["spin"]).start()
        assert world.client(HELLO).start() == 0


def later(signum: int, seconds: float = 0.3) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


@pytest.mark.parametrize("mode", ["spin", "sleep"])
def test_api_sigint_raises_guest_interrupted(mode: str) -> None:
    before = signal.getsignal(signal.SIGINT)
    later(signal.SIGINT)
    with pytest.raises(GuestInterrupted) as stop:
        run(LIMITS, [mode], signals=DEFAULT_SIGNALS)
    assert stop.value.signum == signal.SIGINT and stop.value.exit_code == 130
    assert isinstance(stop.value, GuestStopped)
    assert signal.getsignal(signal.SIGINT) is before  # the handler was put back


def test_api_sigterm_wakes_a_guest_blocked_reading(open_pipe: int) -> None:
    later(signal.SIGTERM)
    with open(open_pipe, "rb", closefd=False) as stdin, pytest.raises(GuestInterrupted) as stop:
        run(LIMITS, ["read"], stdin=stdin, signals=DEFAULT_SIGNALS)
    assert stop.value.signum == signal.SIGTERM and stop.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_the_application_handles_is_left_alone() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with Session(HELLO, signals=DEFAULT_SIGNALS) as session:
            assert session.start() == 0
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_limits_are_checked() -> None:
    for bad in ({"timeout": 0}, {"fuel": -1}, {"max_memory": -1}):
        with pytest.raises(ValueError):
            WasiWorld(**bad)  # type: ignore[arg-type]


# -- the compiled-module cache ------------------------------------------------------------

def test_engines_with_epochs_or_fuel_have_their_own_cache_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path))
    assert run(HELLO).exit_code == 0
    assert run(HELLO, timeout=30).exit_code == 0
    assert run(HELLO, fuel=10**9).exit_code == 0
    assert run(HELLO, fuel=10**9, signals=DEFAULT_SIGNALS).exit_code == 0
    flavors = [p.name for p in (tmp_path / "modules").glob("*.cwasm")]
    assert len(flavors) == 4
    names = [engine_flavor(e, f) for e in (False, True) for f in (False, True)]
    assert len(set(names)) == 4
    for name in names:
        assert any(f.endswith(f"-{name}.cwasm") for f in flavors)


class SignalWhenWritten(io.BytesIO):
    """The guest's stdout: once it says ``written``, a signal is on its way."""

    def write(self, data: Any) -> int:
        if b"written" in bytes(data):
            later(signal.SIGINT, 0.05)
        return super().write(data)


def test_an_object_store_keeps_what_was_closed_before_a_signal() -> None:
    fs = fsspec.filesystem("memory")
    fs.mkdir("/interrupted")
    with pytest.raises(GuestInterrupted):
        run(LIMITS, ["write", "/data/out.txt"], mounts={"/data": "memory://interrupted"},
            stdout=SignalWhenWritten(), signals=DEFAULT_SIGNALS)
    assert fs.cat("/interrupted/out.txt") == b"kept\n"
    fs.rm("/interrupted", recursive=True)


def test_without_signals_ctrl_c_is_a_keyboard_interrupt_not_a_trap(open_pipe: int) -> None:
    later(signal.SIGINT)
    with open(open_pipe, "rb", closefd=False) as stdin, pytest.raises(KeyboardInterrupt):
        run(LIMITS, ["read"], stdin=stdin)


def test_api_timeout_wakes_a_guest_sleeping_forever() -> None:
    """A clock subscription of 2^64-1 ns sleeps (as in wasmtime), still woken by a timeout,
    instead of trapping on a sleep longer than the host's sleep accepts."""
    sub = struct.pack("<QB7xIxxxxQQH6x", 7, 0, 1, 2**64 - 1, 0, 0)  # monotonic, relative
    module = script([("poll_oneoff", (1000, 2000, 1, 3000))], {1000: sub})
    with pytest.raises(GuestTimeout):
        run(module, timeout=1)
