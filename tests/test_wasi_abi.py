"""The preview 1 ABI table: layouts at the witx offsets, errnos at the witx numbers."""

from __future__ import annotations

import errno

from virtwasi.wasi import abi
from virtwasi.wasi.abi import Errno, Filetype, Rights
from virtwasi.wasi.errnos import WasiError, errno_of


def test_struct_fields_sit_at_their_witx_offsets() -> None:
    fdstat = abi.FDSTAT.pack(Filetype.DIRECTORY, 0x1234, 2**40 + 1, 2**50 + 3)
    assert fdstat[0] == 3 and fdstat[2:4] == b"\x34\x12"
    assert int.from_bytes(fdstat[8:16], "little") == 2**40 + 1
    dirent = abi.DIRENT.pack(7, 9, 5, Filetype.REGULAR_FILE)
    assert int.from_bytes(dirent[16:20], "little") == 5 and dirent[20] == 4
    prestat = abi.PRESTAT.pack(0, 12)
    assert int.from_bytes(prestat[4:8], "little") == 12
    event = abi.EVENT.pack(1, Errno.BADF, 2, 100, 1)
    assert event[8] == 8 and event[10] == 2 and int.from_bytes(event[16:24], "little") == 100
    assert abi.SUBSCRIPTION_SIZE == 48


def test_numbering_matches_the_snapshot() -> None:
    assert (Errno.BADF, Errno.NOSYS, Errno.NOTCAPABLE) == (8, 52, 76)
    assert Rights.SOCK_ACCEPT == 1 << 29 and abi.ALL_RIGHTS == (1 << 30) - 1
    assert int(Filetype.SYMBOLIC_LINK) == 7


def test_host_errors_map_to_wasi_errnos_in_one_table() -> None:
    assert errno_of(FileNotFoundError(errno.ENOENT, "x")) is Errno.NOENT
    assert errno_of(OSError(errno.E2BIG, "x")) is Errno.TOOBIG
    assert errno_of(OSError(errno.EOPNOTSUPP, "x")) is Errno.NOTSUP
    assert errno_of(OSError(errno.EXDEV, "x")) is Errno.XDEV
    assert errno_of(OSError(errno.ENOTBLK, "x")) is Errno.IO  # no WASI twin: EIO
    assert errno_of(WasiError(Errno.NOTCAPABLE)) is Errno.NOTCAPABLE
    assert errno_of(RuntimeError("bug")) is Errno.IO
    assert errno_of(MemoryError()) is Errno.NOMEM
