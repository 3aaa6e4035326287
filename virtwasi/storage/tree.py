"""Whole-tree helpers over any storage: a comparable snapshot, and a copy."""

from __future__ import annotations

from .base import FileKind, Storage

Snapshot = dict[str, tuple[str, bytes | str | None]]
CHUNK = 1 << 20


def _read_all(storage: Storage, path: str) -> bytes:
    file = storage.open(path)
    try:
        out = bytearray()
        buf = bytearray(CHUNK)
        while got := file.readinto(memoryview(buf), len(out)):
            out += buf[:got]
        return bytes(out)
    finally:
        file.close()


def _walk(storage: Storage, path: str = "") -> list[tuple[str, FileKind]]:
    found = []
    for entry in storage.listdir(path):
        child = f"{path}/{entry.name}" if path else entry.name
        kind = storage.lstat(child).kind
        found.append((child, kind))
        if kind is FileKind.DIRECTORY:
            found += _walk(storage, child)
    return found


def snapshot(storage: Storage) -> Snapshot:
    """Every entry: its kind and its content (file bytes, or symlink target)."""
    result: Snapshot = {}
    for path, kind in _walk(storage):
        if kind is FileKind.REGULAR:
            result[path] = (kind.value, _read_all(storage, path))
        elif kind is FileKind.SYMLINK:
            result[path] = (kind.value, storage.readlink(path))
        else:
            result[path] = (kind.value, None)
    return result


def copy_tree(source: Storage, target: Storage) -> None:
    """Copy every directory, file and symlink of ``source`` into ``target``'s root."""
    for path, kind in _walk(source):
        if kind is FileKind.DIRECTORY:
            target.mkdir(path)
        elif kind is FileKind.SYMLINK:
            target.symlink(source.readlink(path), path)
        elif kind is FileKind.REGULAR:
            out = target.open(path, create=True, truncate=True, writable=True)
            try:
                out.write(_read_all(source, path), 0)
            finally:
                out.close()
