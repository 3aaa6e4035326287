"""The local content of a file open for writing on a store that cannot write in place.

Object stores and FTP take a file whole, so what a guest writes goes to a spill (memory,
then a file once large) and is uploaded whole when the file is synced or closed. An upload
from a file shows a progress bar on a terminal.

Every spill is recorded in virtwasi's cache folder (see
:mod:`~virtwasi.storage.unsaved`), and its file lives there too, so that a process killed
while writing leaves the next run something to report and keep, not a nameless file.
"""

from __future__ import annotations

import io
import os
import tempfile
import weakref
from typing import Any

import fsspec.callbacks

from ..terminal.progress import Progress, progress
from .unsaved import SpillRecord

MEMORY_LIMIT = 8 << 20
"""The bytes a spill holds in memory; past them it moves to a file."""


class _OnDisk:
    """What a spill holds outside Python (its record, its file), released even if the
    spill is never closed: at garbage collection or at exit."""

    def __init__(self, record: SpillRecord | None) -> None:
        self.record = record
        self.fd = -1
        self.path = ""

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.record is not None:
            self.record.remove()  # the data file with it
        elif self.path:
            os.unlink(self.path)


class Spill:
    """An open file's local content: a BytesIO, moved to a file once larger than
    ``memory_limit`` bytes (by default :data:`MEMORY_LIMIT` as it is when the spill is
    made). ``url``, where the content is meant to go (None: nowhere that outlives this
    process), is recorded while the spill holds data not stored (see the module doc)."""

    def __init__(self, memory_limit: int | None = None, url: str | None = None) -> None:
        self._memory_limit = MEMORY_LIMIT if memory_limit is None else memory_limit
        self._memory: io.BytesIO | None = io.BytesIO()
        self._size = 0
        self._disk = _OnDisk(SpillRecord.create(url))
        self._release = weakref.finalize(self, self._disk.release)

    @property
    def size(self) -> int:
        return self._size

    def retarget(self, url: str | None) -> None:
        """The file was renamed (or unlinked: None): its content is meant for ``url`` now."""
        if self._disk.record is not None:
            self._disk.record.retarget(url)

    def _changed(self) -> None:
        if self._disk.record is not None:
            self._disk.record.unstored()

    def _to_disk(self) -> None:
        assert self._memory is not None
        disk = self._disk
        if disk.record is not None:
            disk.fd, disk.path = disk.record.open_data(), str(disk.record.data_path)
        else:  # the cache folder cannot be written: the temporary folder, unrecorded
            disk.fd, disk.path = tempfile.mkstemp(prefix="virtwasi-spill-")
        view = self._memory.getbuffer()
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(self._disk.fd, view[done:], done)
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
                done += os.pwrite(self._disk.fd, view[done:], offset + done)
        self._size = max(self._size, end)
        self._changed()
        return view.nbytes

    def readinto(self, buf: memoryview, offset: int) -> int:
        if self._memory is not None:
            self._memory.seek(offset)
            return self._memory.readinto(buf)
        return os.preadv(self._disk.fd, [buf], offset)

    def truncate(self, size: int) -> None:
        if self._memory is not None and size > self._memory_limit:
            self._to_disk()
        if self._memory is not None:
            self._memory.truncate(size)
            if size > self._size:  # BytesIO.truncate never grows
                self._memory.seek(size - 1)
                self._memory.write(b"\0")
        else:
            os.ftruncate(self._disk.fd, size)
        self._size = size
        self._changed()

    def upload(self, fs: Any, full: str) -> None:
        if self._memory is not None:
            fs.pipe_file(full, self._memory.getvalue())
        else:
            with progress(f"uploading {full}", total=self._size) as bar:
                fs.put_file(self._disk.path, full, callback=_ProgressCallback(bar))
        if self._disk.record is not None:
            self._disk.record.stored()

    def close(self) -> None:
        self._memory = None
        self._release()


class _ProgressCallback(fsspec.callbacks.Callback):  # type: ignore[misc]
    """fsspec's transfer callback, drawn as virtwasi's progress bar."""

    def __init__(self, bar: Progress) -> None:
        super().__init__()
        self._bar = bar

    def call(self, *args: Any, **kwargs: Any) -> None:
        if self.value > self._bar.done:
            self._bar.advance(self.value - self._bar.done)
