"""What every native import stands on: the client's fd table of host fds, and its preopens.

Unlike the virtual implementation, the native one is part of the runtime: it opens host
folders itself, holds real file descriptors, and at teardown the embedder calls
:meth:`NativeBase.close_all`, a privilege no library instance has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from ..wasi.abi import Errno, Rights
from ..wasi.common import HANGUP, CommonImports, Stdio
from ..wasi.errors import WasiError
from .table import Entry, FdTable, OpenDir, OpenFile

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class NativeBase(CommonImports):
    """The state of one client: fds 0-2 are the given streams, the mounts are preopened
    from fd 3 in order, and guest paths resolve inside them."""

    def __init__(
        self,
        mounts: Mapping[str, str | Path],
        args: list[str],
        env: list[str],
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        stderr: BinaryIO | None,
    ) -> None:
        super().__init__(args, env)
        self.table = FdTable([
            Stdio(stdin, None, Rights.FD_READ),
            Stdio(None, stdout, Rights.FD_WRITE),
            Stdio(None, stderr, Rights.FD_WRITE),
        ])
        try:
            for guest, host in mounts.items():
                self.table.push(OpenDir(os.open(host, _DIRECTORY), preopen=guest))
        except BaseException:
            self.close_all()
            raise

    def close_all(self) -> int:
        """Teardown: close every host fd the client still holds (its preopens too) and
        return how many there were. Every fd answers ``EBADF`` afterwards."""
        return self.table.close_all()

    def entry(self, fd: int) -> Entry:
        return self.table.get(fd)

    def prestat_name(self, fd: int) -> str | None:
        entry = self.table.get(fd)
        return entry.preopen if isinstance(entry, OpenDir) else None

    def poll_fd(self, fd: int, write: bool) -> int:
        entry = self.table.get(fd)
        if isinstance(entry, Stdio):
            if not entry.rights & (Rights.FD_WRITE if write else Rights.FD_READ):
                raise WasiError(Errno.BADF)
            return 0
        if not isinstance(entry, OpenFile):
            raise WasiError(Errno.BADF)
        if write:
            return 0
        return HANGUP if entry.position >= os.fstat(entry.fd).st_size else 0

    def path(self, ptr: int, length: int) -> str:
        return self.memory.string(ptr, length)
