"""Component values in Python, and what one call of the canonical ABI works with.

:class:`Variant`, :class:`Ok`, :class:`Err` and :class:`Some` are the Python values of the
variant-like types (see :mod:`.canonical` for the whole mapping); :class:`CallContext` is a
call's memory, ``realloc`` and :class:`ResourceCalls`; :class:`Trap` is a rule the guest broke.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

M32 = 0xFFFF_FFFF
M64 = 0xFFFF_FFFF_FFFF_FFFF
UTF16_TAG = 1 << 31
MAX_STRING_BYTE_LENGTH = (1 << 31) - 1
"""As wasmtime: the largest string it copies into wasm."""
NAN = math.nan  # bits 0x7ff8000000000000; stored as f32 it is 0x7fc00000: both canonical


class Trap(Exception):
    """The guest broke a rule of the canonical ABI; the message says which. The call ends."""


@dataclass(frozen=True, slots=True)
class Variant:
    case: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Ok:
    value: Any = None


@dataclass(frozen=True, slots=True)
class Err:
    value: Any = None


@dataclass(frozen=True, slots=True)
class Some:
    """The ``some`` case of an option whose payload is itself an option."""

    value: Any


class ResourceCalls(Protocol):
    """How handles cross a call; the world implements it, this module only calls it.

    ``resource`` is the resource type as the :class:`TypeSpace` identifies it; ``index`` is
    a handle index in the table of the instance whose code is on the core side of the call.
    The borrow scope is the call: the world gives each call its own object (or resets one)
    and, once the call has returned and post-return has run, ends the borrows lifted
    during it and checks the callee dropped the borrows lowered to it.
    """

    def lower_own(self, resource: object, value: Any) -> int:
        """Move the handle ``value`` into the core side's table; its new index."""

    def lower_borrow(self, resource: object, value: Any) -> int:
        """Lend ``value`` to the core side for this call: its index there (or the
        representation, if the core side defines ``resource``)."""

    def lift_own(self, resource: object, index: int) -> Any:
        """Take the owned handle at ``index`` out of the core side's table."""

    def lift_borrow(self, resource: object, index: int) -> Any:
        """The handle at ``index`` of the core side's table, lent until the call ends."""


class CallContext:
    """The canonical options of a lift or lower, resolved: memory, ``realloc``, handles.

    ``memory`` returns a view of the whole memory as it is now; ``realloc`` is the core
    function, called with (old pointer, old size, alignment, new size). As the preview 1
    adapter's guest memory does, the view is kept and treated as a lower bound on the
    memory's size: a range past its end re-reads the memory (it may have grown) and only then
    traps, so a call that touches no memory costs nothing here. One context serves every
    call made with the same options; ``resources`` may change from call to call.
    """

    __slots__ = ("_memory", "_realloc", "resources", "view")

    def __init__(self, memory: Callable[[], memoryview] | None = None,
                 realloc: Callable[[int, int, int, int], int] | None = None,
                 resources: ResourceCalls | None = None) -> None:
        self._memory = memory
        self._realloc = realloc
        self.resources = resources
        self.view: memoryview = memoryview(b"")

    def refresh(self) -> memoryview:
        if self._memory is None:
            raise Trap("a value needs linear memory and the canonical options name none")
        self.view = view = self._memory()
        return view

    def span(self, ptr: int, length: int, align: int, what: str) -> memoryview:
        """The memory, once ``length`` bytes at ``ptr`` are known aligned and in bounds."""
        if ptr & (align - 1):
            raise Trap(f"{what} pointer {ptr:#x} is not aligned to {align}")
        view = self.view
        if ptr + length > len(view):
            view = self.refresh()
            if ptr + length > len(view):
                raise Trap(f"{what} of {length} bytes at {ptr:#x} is out of bounds of memory "
                           f"({len(view)} bytes)")
        return view

    def allocate(self, old_ptr: int, old_size: int, align: int, size: int, what: str) -> int:
        if self._realloc is None:
            raise Trap(f"{what} must be copied into wasm and the canonical options name "
                       "no realloc")
        ptr: int = self._realloc(old_ptr, old_size, align, size) & M32
        self.span(ptr, size, align, f"realloc's answer for {what}")
        return ptr

    def handles(self) -> ResourceCalls:
        if self.resources is None:
            raise Trap("a handle crosses a call that has no handle callbacks")
        return self.resources
