"""Guest memory: the one bounds-checked door to an instance's linear memory.

A view of the whole memory is cached and treated as a lower bound on its size: an access
past its end re-reads the memory (it may have grown, and may have moved) and only then
gives up. As in wasmtime, a pointer out of bounds or misaligned is an :class:`AbiViolation`
(the guest traps); an errno is a :class:`WasiError`; nothing else is ever raised.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from .abi import ALIGNMENT, IOVEC, Errno
from .errnos import AbiViolation, WasiError

# What wasmtime lets one call copy between guest and host (its store's default hostcall
# fuel): a longer string, or iovec array and buffer, answers ENOMEM before any bounds check.
HOSTCALL_FUEL = 128 << 20
_unpack_iovec = IOVEC.unpack_from


def _no_memory() -> memoryview:
    raise AbiViolation("the module exports no memory named 'memory': a WASI call that reads "
                       "or writes memory has none to use")


class GuestMemory:
    """A module's exported memory (see the module doc). ``GuestMemory()`` stands for a
    module that exports none: every access beyond nothing traps, saying so."""

    __slots__ = ("_refresh", "view")

    def __init__(self, refresh: Callable[[], memoryview] | None = None) -> None:
        self._refresh = refresh or _no_memory
        self.view = refresh() if refresh is not None else memoryview(b"")

    def _reach(self, end: int) -> memoryview:
        view = self._refresh()
        self.view = view
        if end > len(view):
            raise AbiViolation(f"guest address {end:#x} is out of bounds")
        return view

    def window(self, ptr: int, length: int) -> memoryview:
        """``length`` bytes of guest memory at ``ptr``, as a writable view (no copy)."""
        end = ptr + length
        view = self.view
        if end > len(view):
            view = self._reach(end)
        return view[ptr:end]

    def unpack(self, layout: struct.Struct, ptr: int) -> tuple[Any, ...]:
        if ptr & (ALIGNMENT.get(layout, 1) - 1):
            raise AbiViolation(f"pointer {ptr:#x} is not aligned for a {layout.size}-byte value")
        view = self.view
        if ptr + layout.size > len(view):
            view = self._reach(ptr + layout.size)
        return layout.unpack_from(view, ptr)

    def pack(self, layout: struct.Struct, ptr: int, *values: Any) -> None:
        if ptr & (ALIGNMENT.get(layout, 1) - 1):
            raise AbiViolation(f"pointer {ptr:#x} is not aligned for a {layout.size}-byte value")
        view = self.view
        if ptr + layout.size > len(view):
            view = self._reach(ptr + layout.size)
        layout.pack_into(view, ptr, *values)

    def string(self, ptr: int, length: int, bounded: bool = True) -> str:
        """A UTF-8 string the guest passed: ``ENOMEM`` past :data:`HOSTCALL_FUEL` bytes if
        ``bounded``, wherever it points (as wasmtime, which bounds a call's copies first),
        ``EILSEQ`` if it is not valid UTF-8."""
        if bounded and length > HOSTCALL_FUEL:
            raise WasiError(Errno.NOMEM, "string too long")
        try:
            return str(self.window(ptr, length), "utf-8")
        except UnicodeDecodeError as exc:
            raise WasiError(Errno.ILSEQ, "the guest passed a string that is not UTF-8") from exc

    def read_into(self, ptr: int, size: int, read: Callable[[memoryview], int]) -> int:
        """``read`` (which fills a buffer and says how many bytes it gave) into the
        ``size`` bytes at ``ptr``, where only the bytes read must be in bounds: wasmtime
        reads a stream into a buffer of its own and copies out what came."""
        view = self.view
        if ptr + size <= len(view):
            return read(view[ptr:ptr + size])
        # One byte more than fits is enough to know the copy would run out of memory.
        scratch = memoryview(bytearray(min(size, max(len(view) - ptr, 0) + 1)))
        got = read(scratch)
        if got:  # nothing read is nothing copied, wherever the buffer points
            self.window(ptr, got)[:] = scratch[:got]
        return got

    def first_iovec(self, ptr: int, count: int) -> tuple[int, int]:
        """The address and size of the first non-empty buffer of an iovec array ((0, 0) if
        there is none), its bounds not yet checked.

        One buffer per call is what wasmtime moves, and the guest's libc loops on the short
        count; entries past the first non-empty one are never read. As in wasmtime, the
        array and that buffer together may not exceed :data:`HOSTCALL_FUEL` bytes
        (``ENOMEM``), and the buffer's bounds are checked only when it is used, after the
        fd: a bad fd answers ``EBADF`` whatever the buffer.
        """
        view = self.view
        if count == 1 and not ptr & 3 and ptr + 8 <= len(view):  # the usual call, in one go
            buf, size = _unpack_iovec(view, ptr)
            if size > HOSTCALL_FUEL - 8:
                raise WasiError(Errno.NOMEM, "buffer too large")
            return (buf, size) if size else (0, 0)
        fuel = HOSTCALL_FUEL - count * IOVEC.size
        if fuel < 0:
            raise WasiError(Errno.NOMEM, "too many iovecs")
        for i in range(count):  # (each entry is checked in bounds and aligned as it is read)
            buf, size = self.unpack(IOVEC, ptr + i * IOVEC.size)
            if size:
                if size > fuel:
                    raise WasiError(Errno.NOMEM, "buffer too large")
                return buf, size
        return 0, 0
