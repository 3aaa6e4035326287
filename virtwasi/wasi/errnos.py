"""The one place where host errors become WASI errnos."""

from __future__ import annotations

import enum
import errno as host_errno

from ..filesystem.errors import ANSWERS, ErrorCode, code_of
from .abi import Errno, Fdflags, Lookupflags, Oflags, Rights


class WasiError(Exception):
    """An operation that answers the guest with ``errno`` instead of success."""

    __slots__ = ("errno",)

    def __init__(self, errno: Errno, message: str = "") -> None:
        super().__init__(message or errno.name)
        self.errno = errno


class AbiViolation(Exception):
    """The guest passed a value its type cannot hold (an unknown enum case, an undefined flag
    bit). wasmtime traps on these rather than answering an errno; so does virtwasi."""


def check_enum(name: str, value: int, highest: int) -> None:
    if value > highest:
        raise AbiViolation(f"invalid enum value {value} for {name}")


_KNOWN_BITS: dict[type[enum.IntFlag], int] = {}


def known_bits(flags: type[enum.IntFlag]) -> int:
    known = _KNOWN_BITS.get(flags)
    if known is None:
        known = _KNOWN_BITS[flags] = sum(int(member) for member in flags)
    return known


def check_flags(name: str, value: int, flags: type[enum.IntFlag]) -> None:
    if value & ~known_bits(flags):
        raise AbiViolation(f"invalid flags {value:#x} for {name}")


# The largest value of each of path_open's flag arguments, worked out once: each type's
# flags are its lowest bits, with no gap, so a value has a bit that no flag has exactly
# when it is larger. path_open compares on every call (comparing ints is the interpreter's
# cheapest test; masking with the negative complement was among its dearest), and asks
# check_open_flags which argument is wrong only when one is.
MAX_LOOKUP, MAX_OPEN = known_bits(Lookupflags), known_bits(Oflags)
MAX_RIGHTS, MAX_FD = known_bits(Rights), known_bits(Fdflags)
assert all(bits & (bits + 1) == 0 for bits in (MAX_LOOKUP, MAX_OPEN, MAX_RIGHTS, MAX_FD))


def check_open_flags(dirflags: int, oflags: int, base: int, inheriting: int,
                     fdflags: int) -> None:
    """path_open's flag arguments, checked in the order wasmtime checks them."""
    check_flags("Lookupflags", dirflags, Lookupflags)
    check_flags("Oflags", oflags, Oflags)
    check_flags("Rights", base, Rights)
    check_flags("Rights", inheriting, Rights)
    check_flags("Fdflags", fdflags, Fdflags)


# Host errno code -> WASI errno, derived by name: WASI's EACCES is the host's EACCES, and so on.
_HOST_TO_WASI: dict[int, Errno] = {}
for _member in Errno:
    _name = {"TOOBIG": "E2BIG", "SUCCESS": ""}.get(_member.name, "E" + _member.name)
    _code = getattr(host_errno, _name, None) if _name else None
    if isinstance(_code, int):
        _HOST_TO_WASI.setdefault(_code, _member)
_HOST_TO_WASI[host_errno.EOPNOTSUPP] = Errno.NOTSUP  # the same number as ENOTSUP on Linux
_HOST_TO_WASI[host_errno.EWOULDBLOCK] = Errno.AGAIN


def errno_name(errno: Errno) -> str:
    """The POSIX name of a WASI errno (``ENOENT``)."""
    return "E2BIG" if errno is Errno.TOOBIG else f"E{errno.name}"


# The interface's error codes -> errnos, by their POSIX names.
ERRNO_OF_CODE: dict[ErrorCode, Errno] = {code: Errno[code.value[1:]] for code in ErrorCode}

ANSWERED: tuple[type[BaseException], ...] = (WasiError, *ANSWERS)
"""What a preview 1 call answers with an errno rather than a trap."""


def errno_of(exc: BaseException) -> Errno:
    """The WASI errno a guest should see for ``exc``: the adapter's own, a host errno as
    it is (preview 1 has more of them than ``error-code``), else the interface's code."""
    if isinstance(exc, WasiError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno is not None:
        return _HOST_TO_WASI.get(exc.errno, Errno.IO)
    return ERRNO_OF_CODE[code_of(exc)]
