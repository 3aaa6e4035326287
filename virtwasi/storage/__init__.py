"""Storage capabilities: filesystems a WASI virtualizer is given, speaking POSIX errnos.

The fsspec-backed storage is loaded when first named: a run over the in-memory default or
a host folder never imports fsspec (a tenth of a second of start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import DirEntry, File, FileKind, Stat, Storage
from .hostdir import HostDirStorage
from .memfs import MemoryStorage
from .opening import Opening, open_rule
from .overlay import OverlayStorage
from .readonly import ReadOnlyStorage, is_read_only

if TYPE_CHECKING:
    from .fsspec_storage import FsspecStorage

__all__ = [
    "DirEntry",
    "File",
    "FileKind",
    "FsspecStorage",
    "HostDirStorage",
    "MemoryStorage",
    "Opening",
    "OverlayStorage",
    "ReadOnlyStorage",
    "Stat",
    "Storage",
    "is_read_only",
    "open_rule",
]


def __getattr__(name: str) -> Any:
    if name == "FsspecStorage":
        from .fsspec_storage import FsspecStorage

        return FsspecStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
