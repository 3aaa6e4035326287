"""virtwasi: WASI preview 1 served by an unprivileged library instance.

The names here are the public API: :func:`run` and :class:`Session` run one module,
:class:`WasiWorld` builds the world it runs in, :class:`World` and its helpers are the
module-linking simulator every other layer stands on (instances, private resource types,
handle tables, destructors and teardown); :func:`map` runs a module over many inputs.
Each is imported on first use, so that ``import virtwasi`` (and so the CLI's start) loads
neither wasmtime nor fsspec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_SOURCES: dict[str, str] = {
    **dict.fromkeys(
        ("Context", "Instance", "LinkError", "ResourceType", "Semantics", "Trap", "TrapReason",
         "World", "borrow", "given", "lent", "own", "shared", "value"),
        ".world",
    ),
    **dict.fromkeys(("WasiWorld", "Session", "run"), ".runtime"),
    **dict.fromkeys(("Client", "GuestExit", "GuestTrap", "TRAP_EXIT_CODE"), ".client"),
    "RunResult": ".compare.result",
    "map": ".batch",
    **dict.fromkeys(("MountError", "MountSource", "Overlay", "Remote"), ".storage.mounts"),
    **dict.fromkeys(("FsspecStorage", "HostDirStorage", "MemoryStorage", "Storage"), ".storage"),
}

__all__ = [
    "TRAP_EXIT_CODE",
    "Client",
    "Context",
    "FsspecStorage",
    "GuestExit",
    "GuestTrap",
    "HostDirStorage",
    "Instance",
    "LinkError",
    "MemoryStorage",
    "MountError",
    "MountSource",
    "Overlay",
    "Remote",
    "ResourceType",
    "RunResult",
    "Semantics",
    "Session",
    "Storage",
    "Trap",
    "TrapReason",
    "WasiWorld",
    "World",
    "__version__",
    "borrow",
    "given",
    "lent",
    "map",
    "own",
    "run",
    "shared",
    "value",
]

if TYPE_CHECKING:
    from .batch import map
    from .client import TRAP_EXIT_CODE, Client, GuestExit, GuestTrap
    from .compare.result import RunResult
    from .runtime import Session, WasiWorld, run
    from .storage import FsspecStorage, HostDirStorage, MemoryStorage, Storage
    from .storage.mounts import MountError, MountSource, Overlay, Remote
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


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = found  # once imported, an ordinary attribute
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
