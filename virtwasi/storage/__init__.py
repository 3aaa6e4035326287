"""Storage capabilities: filesystems a WASI virtualizer is given, speaking POSIX errnos."""

from .base import DirEntry, File, FileKind, Stat, Storage

__all__ = ["DirEntry", "File", "FileKind", "Stat", "Storage"]
