"""Storage capabilities: filesystems a WASI virtualizer is given, speaking POSIX errnos."""

from .base import DirEntry, File, FileKind, Stat, Storage
from .fsspec_storage import FsspecStorage
from .hostdir import HostDirStorage
from .memfs import MemoryStorage
from .opening import Opening, open_rule
from .overlay import OverlayStorage
from .readonly import ReadOnlyStorage, is_read_only

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
