"""A copy-up appears whole or not at all: one stopped half way (an exception, or the process
killed by SIGKILL) never leaves part of the file under its real name in the upper layer, and
what it left aside is never shown to a guest and is discarded by the next mount."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from virtwasi.storage import HostDirStorage, OverlayStorage
from virtwasi.storage.base import File, Storage
from virtwasi.storage.overlay import WORK_DIR

FSTOOL = FIXTURES / "fstool.wasm"
MiB = 1 << 20
BIG = bytes(range(256)) * (6 * MiB // 256)  # 6 MiB, six chunks of a copy-up


class StoppingFile:
    """A writable upper file that calls ``stop`` once ``after`` bytes have been written."""

    def __init__(self, inner: File, after: int, stop: Callable[[], None]) -> None:
        self._inner = inner
        self._left = after
        self._stop = stop

    def write(self, data: memoryview | bytes, offset: int) -> int:
        if self._left <= 0:
            self._stop()
        self._left -= len(data)
        return self._inner.write(data, offset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class StoppingUpper:
    """An upper layer whose written files call ``stop`` after ``after`` bytes, and whose
    ``unlink`` fails while ``can_unlink`` is false (as in a process that is gone)."""

    def __init__(self, inner: Storage, after: int, stop: Callable[[], None]) -> None:
        self.inner = inner
        self.after = after
        self.stop = stop
        self.can_unlink = True

    def open(self, path: str, **flags: bool) -> File:
        file = self.inner.open(path, **flags)
        if flags.get("writable"):
            return StoppingFile(file, self.after, self.stop)
        return file

    def unlink(self, path: str) -> None:
        if not self.can_unlink:
            raise OSError(errno.EIO, "gone", path)
        self.inner.unlink(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def read_all(storage: Storage, path: str) -> bytes:
    file = storage.open(path)
    try:
        out = bytearray()
        buf = memoryview(bytearray(MiB))
        while n := file.readinto(buf, len(out)):
            out += buf[:n]
        return bytes(out)
    finally:
        file.close()


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "data").mkdir(parents=True)
    (lower / "data" / "big.bin").write_bytes(BIG)
    upper.mkdir()
    return lower, upper


def interrupt() -> None:
    raise KeyboardInterrupt


def test_an_interrupted_copy_up_leaves_the_lower_file_whole(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    overlay = OverlayStorage(HostDirStorage(lower),
                             StoppingUpper(HostDirStorage(upper), 3 * MiB, interrupt))
    with pytest.raises(KeyboardInterrupt):
        overlay.open("data/big.bin", writable=True)
    assert not (upper / "data" / "big.bin").exists()
    assert not (upper / WORK_DIR).exists()  # the half copy was removed on the way out
    assert read_all(overlay, "data/big.bin") == BIG
    assert overlay.lstat("data/big.bin").size == len(BIG)
    overlay.close()


def test_a_leftover_copy_is_hidden_and_the_next_mount_discards_it(
        layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    seen: list[list[str]] = []
    holder: list[OverlayStorage] = []

    def stop() -> None:  # the process dies here: nothing more runs, not even clean-up
        seen.append([e.name for e in holder[0].listdir("")])
        stopping.can_unlink = False
        raise KeyboardInterrupt

    stopping = StoppingUpper(HostDirStorage(upper), 3 * MiB, stop)
    overlay = OverlayStorage(HostDirStorage(lower), stopping)
    holder.append(overlay)
    with pytest.raises(KeyboardInterrupt):
        overlay.open("data/big.bin", writable=True)
    assert seen == [["data"]]  # mid copy: the work folder is not listed
    assert not (upper / "data" / "big.bin").exists()
    [partial] = (upper / WORK_DIR).iterdir()
    assert 0 < partial.stat().st_size < len(BIG)
    assert [e.name for e in overlay.listdir("")] == ["data"]
    assert read_all(overlay, "data/big.bin") == BIG
    with pytest.raises(FileNotFoundError):
        overlay.lstat(WORK_DIR)
    with pytest.raises(FileNotFoundError):
        overlay.lstat(f"{WORK_DIR}/{partial.name}")
    overlay.close()

    again = OverlayStorage(HostDirStorage(lower), HostDirStorage(upper))
    assert not (upper / WORK_DIR).exists()
    file = again.open("data/big.bin", writable=True)
    file.write(b"!", len(BIG))
    file.close()
    assert (upper / "data" / "big.bin").read_bytes() == BIG + b"!"
    assert not (upper / WORK_DIR).exists()
    again.close()


def test_a_guest_cannot_make_the_work_folder(tmp_path: Path) -> None:
    overlay = OverlayStorage(HostDirStorage(tmp_path))
    for make in (lambda: overlay.mkdir(WORK_DIR),
                 lambda: overlay.open(WORK_DIR, create=True, writable=True),
                 lambda: overlay.symlink("x", WORK_DIR)):
        with pytest.raises(PermissionError):
            make()
    overlay.mkdir("d")
    with pytest.raises(PermissionError):
        overlay.rename("d", WORK_DIR)
    assert [e.name for e in overlay.listdir("")] == ["d"]


def test_a_copy_up_killed_by_sigkill_is_discarded_at_the_next_mount(
        layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    child = os.fork()
    if child == 0:  # pragma: no cover - the child never returns
        try:
            def die() -> None:
                os.kill(os.getpid(), signal.SIGKILL)

            overlay = OverlayStorage(HostDirStorage(lower),
                                     StoppingUpper(HostDirStorage(upper), 3 * MiB, die))
            overlay.open("data/big.bin", writable=True)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not (upper / "data" / "big.bin").exists()
    [partial] = (upper / WORK_DIR).iterdir()
    assert partial.stat().st_size == 3 * MiB
    overlay = OverlayStorage(HostDirStorage(lower), HostDirStorage(upper))
    assert not (upper / WORK_DIR).exists()
    assert read_all(overlay, "data/big.bin") == BIG
    overlay.close()


def copying(work: Path) -> bool:
    """Whether a copy-up has written some bytes into the work folder ``work``."""
    try:
        return any(p.stat().st_size > 0 for p in work.iterdir())
    except FileNotFoundError:  # not made yet, or renamed away meanwhile
        return False


def test_a_run_killed_mid_copy_up_leaves_no_half_file(tmp_path: Path) -> None:
    """Through the command line, with a host folder as the upper layer: SIGKILL the run
    while it copies a 256 MiB lower file up, then run again."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    size = 256 * MiB
    with open(lower / "big.bin", "wb") as file:  # sparse: quick to make, quick to read
        file.seek(size - 8)
        file.write(b"THE END\n")
    command = [sys.executable, "-m", "virtwasi", "run", "--dir", f"{lower}::/data",
               "--overlay", f"/data={upper}", str(FSTOOL)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    work = upper / WORK_DIR
    run = subprocess.Popen([*command, "append", "/data/big.bin", "more\n"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        seen = False
        while not seen and run.poll() is None and time.monotonic() < deadline:
            seen = copying(work)
            if not seen:
                time.sleep(0.001)
        run.send_signal(signal.SIGKILL)
    finally:
        run.kill()
        run.wait(timeout=60)
        assert run.stderr is not None
        run.stderr.close()
    assert seen, "the run ended before its copy-up could be seen"
    assert run.returncode == -signal.SIGKILL
    assert not (upper / "big.bin").exists()
    [left] = work.iterdir()
    assert left.stat().st_size < size

    again = subprocess.run([*command, "stat", "/data/big.bin", "ls", "/data",
                            "append", "/data/big.bin", "more\n", "stat", "/data/big.bin"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.splitlines() == [
        f"stat /data/big.bin: file, {size} bytes",
        "ls /data: big.bin",
        "append /data/big.bin: ok",
        f"stat /data/big.bin: file, {size + 5} bytes",
    ]
    assert sorted(p.name for p in upper.iterdir()) == ["big.bin"]
    with open(upper / "big.bin", "rb") as file:
        file.seek(size - 8)
        assert file.read() == b"THE END\nmore\n"
