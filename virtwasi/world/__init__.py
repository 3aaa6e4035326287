"""The world: a module-linking simulator with private resource types and handle tables.

Instances hold handles in their own tables; resource types are private to the instance that
defines them; every call between instances crosses a membrane that lifts and lowers handles
under one of three semantics (:class:`Semantics`). Anything the rules forbid is a
:class:`Trap`, raised to the embedder's call and never beyond; under component-model
semantics a trap that escapes an instance leaves it unusable, and no call reenters an
instance that is running one (:mod:`.entry`).
"""

from .instance import BoundFunc, Context, Definition, Exports, Instance
from .resources import HandleKind, HeldHandle, ResourceType
from .semantics import Semantics
from .trap import LinkError, Trap, TrapReason
from .types import (
    Func,
    HandleIntent,
    HandleParam,
    Signature,
    Value,
    borrow,
    given,
    lent,
    own,
    shared,
    value,
)
from .world import World

__all__ = [
    "BoundFunc",
    "Context",
    "Definition",
    "Exports",
    "Func",
    "HandleIntent",
    "HandleKind",
    "HandleParam",
    "HeldHandle",
    "Instance",
    "LinkError",
    "ResourceType",
    "Semantics",
    "Signature",
    "Trap",
    "TrapReason",
    "Value",
    "World",
    "borrow",
    "given",
    "lent",
    "own",
    "shared",
    "value",
]
