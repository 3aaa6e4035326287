"""Guest memory: the one bounds-checked door to an instance's linear memory.

A view of the whole memory is cached and treated as a lower bound on its size: an access
past its end re-reads the memory (it may have grown, and may have moved) and only then
answers ``EFAULT``. Nothing here ever raises anything but :class:`WasiError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from .abi import IOVEC, Errno
from .errors import WasiError


class GuestMemory:
    __slots__ = ("_refresh", "view")

    def __init__(self, refresh: Callable[[], memoryview]) -> None:
        self._refresh = refresh
        self.view = refresh()

    def _reach(self, end: int) -> memoryview:
        view = self._refresh()
        self.view = view
        if end > len(view):
            raise WasiError(Errno.FAULT, f"guest address {end:#x} is out of bounds")
        return view

    def window(self, ptr: int, length: int) -> memoryview:
        """``length`` bytes of guest memory at ``ptr``, as a writable view (no copy)."""
        end = ptr + length
        view = self.view
        if end > len(view):
            view = self._reach(end)
        return view[ptr:end]

    def unpack(self, layout: struct.Struct, ptr: int) -> tuple[Any, ...]:
        view = self.view
        if ptr + layout.size > len(view):
            view = self._reach(ptr + layout.size)
        return layout.unpack_from(view, ptr)

    def pack(self, layout: struct.Struct, ptr: int, *values: Any) -> None:
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

    def iovecs(self, ptr: int, count: int) -> list[memoryview]:
        """The buffers of an iovec array, each checked against the memory's bounds."""
        table = self.window(ptr, count * IOVEC.size)  # checks the array itself first
        return [self.window(buf, size) for buf, size in IOVEC.iter_unpack(table)]
