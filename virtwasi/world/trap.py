"""Traps: how the world refuses an operation without harming the host process."""

from __future__ import annotations

import enum


class TrapReason(enum.Enum):
    """Machine-readable cause of a :class:`Trap`."""

    NOT_DEFINER = "not-definer"
    """``new``/``rep`` on a resource type by an instance that did not define it."""
    INVALID_HANDLE = "invalid-handle"
    """The index names no handle in the holding instance's table (0 never does)."""
    TYPE_MISMATCH = "type-mismatch"
    """A handle of one resource type was used where another type was expected."""
    NULL_HANDLE = "null-handle"
    """The handle's resource was destroyed; its representation is gone."""
    HANDLE_LENT = "handle-lent"
    """The handle is lent to a call in progress: it cannot be dropped or moved."""
    NOT_OWNED = "not-owned"
    """A borrowed handle was used where an owned one is required (move, destroy)."""
    BORROW_NOT_DROPPED = "borrow-not-dropped"
    """A callee returned while still holding a handle it was lent for the call."""
    INSTANCE_DESTROYED = "instance-destroyed"
    """A call into, or from, an instance that has been torn down."""
    INSTANCE_BUSY = "instance-busy"
    """Teardown of an instance that is still running a call."""
    INSTANCE_TRAPPED = "instance-trapped"
    """A call into, or from, an instance that trapped before: a trap leaves an instance
    unusable (component-model)."""
    REENTRANCE = "reentrance"
    """A call, or a drop that runs a destructor, would enter an instance that is already
    running a call and is no ancestor of the caller (component-model)."""
    MAY_NOT_LEAVE = "may-not-leave"
    """The instance runs a post-return or a realloc: it may not call out, nor make or drop
    handles, until that ends."""
    TABLE_FULL = "table-full"
    """A handle table already holds the canonical ABI's limit of 2**28-1 handles."""
    UNSUPPORTED = "unsupported"
    """The operation has no meaning under the world's semantics."""
    BAD_CALL = "bad-call"
    """Wrong number of arguments or results at a call across instances."""


class Trap(Exception):
    """An operation that the world refuses; it ends the guest call that caused it.

    A trap unwinds every call in progress up to the embedder's call, releasing what those
    calls had borrowed, and is raised there as an ordinary exception: the host process and
    every other instance carry on.
    """

    def __init__(self, reason: TrapReason, message: str, *, instance: str | None = None) -> None:
        super().__init__(f"{message} [{reason.value}]")
        self.reason = reason
        self.message = message
        self.instance = instance


class LinkError(Exception):
    """An import that is missing or does not name an export: a wiring mistake, not a trap."""
