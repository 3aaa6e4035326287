"""Resource types, resources, handles and the per-instance handle table.

These are plain records; the rules that move them around live in :mod:`.handles` (what one
instance may do to its own table) and :mod:`.membrane` (what happens at a call).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .trap import Trap, TrapReason

if TYPE_CHECKING:
    from .instance import Instance
    from .membrane import Frame

Destructor = Callable[[Any], None]


class ResourceType:
    """A generative resource type: each call to ``Context.resource_type`` makes a new one.

    Only the defining instance can create handles of it or read their representation. Other
    instances may name it in signatures (it can be exported like a function) and hold, pass
    and drop handles of it. The optional destructor runs inside the defining instance, once
    per resource, with the representation the resource was created with.

    What anyone holding the type can read is harmless: its ``name``, its definer's name
    (``definer_name``) and how many of its resources are alive (``live_count``). The defining
    instance, the destructor and the guard are private to the world.
    """

    __slots__ = ("_definer", "_destructor", "_guard", "_live", "_raises", "name")

    def __init__(self, name: str, definer: Instance, destructor: Destructor | None,
                 raises: tuple[type[BaseException], ...] = ()) -> None:
        self.name = name
        self._definer = definer
        self._destructor = destructor
        # What the destructor raises as an answer (a close's error), not as a trap.
        self._raises = raises
        # Called with the rep before a drop that would run the destructor; it may trap to
        # refuse, so that a refused drop changes nothing (the world uses it for instances).
        self._guard: Destructor | None = None
        self._live: set[Resource] = set()

    @property
    def definer_name(self) -> str:
        """The name of the instance that defined this type."""
        return self._definer.name

    @property
    def live_count(self) -> int:
        """How many resources of this type exist whose destructor has not run."""
        return len(self._live)

    def __repr__(self) -> str:
        return f"<ResourceType {self.name!r} of {self._definer.name!r}>"


class Resource:
    """One resource: its representation, whether it is alive, and (2021) its reference count."""

    __slots__ = ("alive", "refs", "rep", "rtype")

    def __init__(self, rtype: ResourceType, rep: Any) -> None:
        self.rtype = rtype
        self.rep: Any = rep
        self.alive = True
        self.refs = 1


class HandleKind(enum.Enum):
    OWN = "own"
    BORROW = "borrow"
    SHARED = "shared"


@dataclass(frozen=True)
class HeldHandle:
    """What an observer may know about one handle an instance holds (a snapshot, see
    ``Instance.holdings``): where it is, of which type, how it is held, and the state of
    its resource. It gives no way to the representation or to the resource itself."""

    index: int
    """Its index in the holder's table."""
    type_name: str
    """The name of its resource type."""
    definer_name: str
    """The name of the instance that defined that type."""
    kind: HandleKind
    """own, borrow or shared."""
    alive: bool
    """False once the resource was destroyed: the handle is null."""
    refs: int
    """How many shared handles the resource has (proposal-2021); 1 for an own handle."""
    lends: int
    """How many calls in progress it is lent to (it can be neither dropped nor moved)."""

    @classmethod
    def of(cls, index: int, handle: Handle) -> HeldHandle:
        resource = handle.resource
        return cls(index, handle.rtype.name, handle.rtype.definer_name, handle.kind,
                   resource.alive, resource.refs, handle.lends)


class Handle:
    """An entry of a handle table: which resource, how it is held, and who borrowed it.

    ``lends`` counts calls in progress to which this handle is lent; while it is non-zero the
    handle can be neither dropped nor moved. A borrow handle remembers the call (``scope``)
    that lent it, so dropping it settles that call's account.
    """

    __slots__ = ("kind", "lends", "resource", "rtype", "scope")

    def __init__(
        self, resource: Resource, kind: HandleKind, scope: Frame | None = None
    ) -> None:
        self.rtype = resource.rtype
        self.resource = resource
        self.kind = kind
        self.lends = 0
        self.scope = scope


class HandleTable:
    """The handles one instance holds, by small integer index.

    Index 0 is never valid, so a zeroed integer can never name a handle. A freed slot is
    reused before the table grows, most recently freed first (LIFO), as the component
    model's canonical ABI does; this is why a stale index can come to name a new handle.
    """

    __slots__ = ("_free", "_slots", "owner")

    MAX_LENGTH = 2**28 - 1
    """The most handles a table holds: the canonical ABI's limit, which leaves an index's top
    four bits free. Every semantics keeps it: no real program comes near it, and a table
    that grows without bound is nobody's semantics."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._slots: list[Handle | None] = [None]
        self._free: list[int] = []

    def add(self, handle: Handle) -> int:
        if self._free:
            index = self._free.pop()
            self._slots[index] = handle
            return index
        index = len(self._slots)
        if index > self.MAX_LENGTH:
            raise self.full(handle.rtype)
        self._slots.append(handle)
        return index

    def require_room(self, count: int, rtype: ResourceType) -> None:
        """Trap, changing nothing, unless ``count`` more handles fit (``rtype`` names one)."""
        if count > len(self._free) + self.MAX_LENGTH + 1 - len(self._slots):
            raise self.full(rtype)

    def full(self, rtype: ResourceType) -> Trap:
        """The trap of a table with no room for a handle of ``rtype``."""
        return Trap(
            TrapReason.TABLE_FULL,
            f"the handle table of instance {self.owner!r} is full ({self.MAX_LENGTH} "
            f"handles): it cannot take a {rtype.name!r} handle (defined by "
            f"{rtype.definer_name!r})",
            instance=self.owner,
        )

    def get(self, index: int) -> Handle:
        """The handle at ``index``; a trap if there is none (0, freed, out of range, not int)."""
        try:
            handle = self._slots[index] if index > 0 else None
        except (IndexError, TypeError):
            handle = None
        if handle is None:
            raise Trap(
                TrapReason.INVALID_HANDLE,
                f"{index!r} is not a handle in the table of instance {self.owner!r}",
                instance=self.owner,
            )
        return handle

    def peek(self, index: int) -> Handle | None:
        """The handle at a known-valid slot index, or None if the slot is free."""
        return self._slots[index]

    def remove(self, index: int) -> Handle:
        handle = self.get(index)
        self._slots[index] = None
        self._free.append(index)
        return handle

    def items(self) -> Iterator[tuple[int, Handle]]:
        for index, handle in enumerate(self._slots):
            if handle is not None:
                yield index, handle

    def __len__(self) -> int:
        return len(self._slots) - 1 - len(self._free)
