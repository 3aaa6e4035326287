"""Setting file times the way the kernel offers it: ``futimens`` and ``utimensat``.

``os.utime`` cannot say "leave this time alone" or "now" to the kernel; the interface can,
and the difference shows (setting only ``mtime`` must not touch ``atime``, and "now" is
allowed to anyone who may write the file, not only its owner). So the two calls are made
through libc, with ``UTIME_OMIT`` and ``UTIME_NOW``.
"""

from __future__ import annotations

import ctypes
import os

from ..filesystem.interface import NOW, NewTimestamp

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_Times = _Timespec * 2
_libc = ctypes.CDLL(None, use_errno=True)
_futimens = _libc.futimens
_futimens.argtypes = [ctypes.c_int, _Times]
_utimensat = _libc.utimensat
_utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, _Times, ctypes.c_int]


def _spec(given: NewTimestamp) -> _Timespec:
    if given is None:
        return _Timespec(0, UTIME_OMIT)
    if given is NOW:
        return _Timespec(0, UTIME_NOW)
    assert isinstance(given, int)
    return _Timespec(given // NS, given % NS)


def times(atime: NewTimestamp, mtime: NewTimestamp) -> ctypes.Array[_Timespec]:
    """The kernel's pair of timespecs."""
    return _Times(_spec(atime), _spec(mtime))


def _check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def set_times_fd(fd: int, spec: ctypes.Array[_Timespec]) -> None:
    _check(_futimens(fd, spec))


def set_times_at(dir_fd: int, name: str, spec: ctypes.Array[_Timespec]) -> None:
    """Set the times of ``name`` in ``dir_fd`` itself, never of what it links to."""
    _check(_utimensat(dir_fd, os.fsencode(name), spec, AT_SYMLINK_NOFOLLOW))
