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

MAX_IOVECS = 1 << 24
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

    def string(self, ptr: int, length: int) -> str:
        """A UTF-8 string the guest passed (``EILSEQ`` if it is not valid UTF-8)."""
        try:
            return str(self.window(ptr, length), "utf-8")
        except UnicodeDecodeError as exc:
            raise WasiError(Errno.ILSEQ, "the guest passed a string that is not UTF-8") from exc

    def first_buffer(self, ptr: int, count: int) -> memoryview:
        """The first non-empty buffer of an iovec array (empty if there is none).

        One buffer per call is what wasmtime moves, and the guest's libc loops on the short
        count; entries past the first non-empty one are never read, as in wasmtime, which
        answers ``ENOMEM`` only when the array could not even be described (2**24 entries).
        """
        view = self.view
        if count == 1 and not ptr & 3 and ptr + 8 <= len(view):  # the usual call, in one go
            buf, size = _unpack_iovec(view, ptr)
            if size and buf + size <= len(view):
                return view[buf:buf + size]
        if count >= MAX_IOVECS:
            raise WasiError(Errno.NOMEM, "too many iovecs")
        if ptr & 3:
            raise AbiViolation(f"iovec array {ptr:#x} is not aligned")
        for i in range(count):
            buf, size = self.unpack(IOVEC, ptr + i * IOVEC.size)
            if size:
                return self.window(buf, size)
        return self.view[0:0]
