"""virtwasi: WASI preview 1 served by an unprivileged library instance.

The :mod:`virtwasi.world` package is the module-linking simulator every other layer stands
on: instances, private resource types, handle tables, destructors and teardown.
"""

from .world import (
    Context,
    Instance,
    LinkError,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    World,
    borrow,
    given,
    lent,
    own,
    shared,
    value,
)

__version__ = "0.1.0"

__all__ = [
    "Context",
    "Instance",
    "LinkError",
    "ResourceType",
    "Semantics",
    "Trap",
    "TrapReason",
    "World",
    "__version__",
    "borrow",
    "given",
    "lent",
    "own",
    "shared",
    "value",
]
