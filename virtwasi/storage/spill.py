"""The local content of a file open for writing on a store that cannot write in place.

Object stores and FTP take a file whole, so what a guest writes goes to a spill (memory,
then a temporary file once large) and is uploaded whole when the file is synced or closed.
An upload from a temporary file shows a progress bar on a terminal.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import fsspec.callbacks

from ..terminal.progress import Progress, progress


class Spill:
    """An open file's local content: a BytesIO, moved to a temporary file once larger than
    ``memory_limit`` bytes."""

    def __init__(self, memory_limit: int) -> None:
        self._memory_limit = memory_limit
        self._memory: io.BytesIO | None = io.BytesIO()
        self._fd = -1
        self._path = ""
        self._size = 0
        self._release: weakref.finalize[Any, Any] | None = None

    @property
    def size(self) -> int:
        return self._size

    def _to_disk(self) -> None:
        assert self._memory is not None
        self._fd, self._path = tempfile.mkstemp(prefix="virtwasi-spill-")
        self._release = weakref.finalize(self, _remove_spill, self._fd, self._path)
        view = self._memory.getbuffer()
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], done)
        finally:
            view.release()
        self._memory = None

    def write(self, data: memoryview | bytes, offset: int) -> int:
        view = memoryview(data).cast("B")
        end = offset + view.nbytes
        if self._memory is not None and end > self._memory_limit:
            self._to_disk()
        if self._memory is not None:
            self._memory.seek(offset)
            self._memory.write(view)  # BytesIO fills a gap with zeros
        else:
            done = 0
            while done < view.nbytes:
                done += os.pwrite(self._fd, view[done:], offset + done)
        self._size = max(self._size, end)
        return view.nbytes

    def readinto(self, buf: memoryview, offset: int) -> int:
        if self._memory is not None:
            self._memory.seek(offset)
            return self._memory.readinto(buf)
        return os.preadv(self._fd, [buf], offset)

    def truncate(self, size: int) -> None:
        if self._memory is not None and size > self._memory_limit:
            self._to_disk()
        if self._memory is not None:
            self._memory.truncate(size)
            if size > self._size:  # BytesIO.truncate never grows
                self._memory.seek(size - 1)
                self._memory.write(b"\0")
        else:
            os.ftruncate(self._fd, size)
        self._size = size

    def upload(self, fs: Any, full: str) -> None:
        if self._memory is not None:
            fs.pipe_file(full, self._memory.getvalue())
            return
        with progress(f"uploading {full}", total=self._size) as bar:
            fs.put_file(self._path, full, callback=_ProgressCallback(bar))

    def close(self) -> None:
        self._memory = None
        if self._release is not None:
            self._release()


class _ProgressCallback(fsspec.callbacks.Callback):  # type: ignore[misc]
    """fsspec's transfer callback, drawn as virtwasi's progress bar."""

    def __init__(self, bar: Progress) -> None:
        super().__init__()
        self._bar = bar

    def call(self, *args: Any, **kwargs: Any) -> None:
        if self.value > self._bar.done:
            self._bar.advance(self.value - self._bar.done)


def _remove_spill(fd: int, path: str) -> None:
    os.close(fd)
    os.unlink(path)


def unsaved_folder() -> Path:
    """Where written data that could not be stored is kept for the user to recover:
    ``$VIRTWASI_CACHE/unsaved``, or ``unsaved`` in virtwasi's cache folder
    (``~/.cache/virtwasi``, or under ``$XDG_CACHE_HOME``), also when ``VIRTWASI_CACHE=off``
    turns the module cache off: unsaved data is never dropped."""
    configured = os.environ.get("VIRTWASI_CACHE")
    if configured and configured != "off":
        return Path(configured) / "unsaved"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "virtwasi" / "unsaved"


def unsaved_run_folder() -> Path:
    """A folder of :func:`unsaved_folder` for this run (time and process id), not made yet:
    what one run could not store, under the paths it had in its storage."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return unsaved_folder() / f"{stamp}-{os.getpid()}"
