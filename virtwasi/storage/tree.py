"""Whole-tree helpers over any storage: a comparable snapshot, a copy, a removal."""

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


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _walk(storage: Storage, path: str = "") -> list[tuple[str, FileKind]]:
    """Every entry below ``path``, each directory before what it holds. A loop with a
    stack of listings, not recursion: a tree may be deeper than Python's stack."""
    found: list[tuple[str, FileKind]] = []
    pending = [iter([(path, name) for name in _names(storage, path)])]
    while pending:
        step = next(pending[-1], None)
        if step is None:
            pending.pop()
            continue
        child = _join(*step)
        kind = storage.lstat(child).kind
        found.append((child, kind))
        if kind is FileKind.DIRECTORY:
            pending.append(iter([(child, name) for name in _names(storage, child)]))
    return found


def _names(storage: Storage, path: str) -> list[str]:
    return [entry.name for entry in storage.listdir(path)]


def remove_tree(storage: Storage, path: str) -> None:
    """Remove ``path`` with everything below it (``""``: everything below the root, which
    stays). A loop, not recursion: a tree may be deeper than Python's stack."""
    if path and storage.lstat(path).kind is not FileKind.DIRECTORY:
        storage.unlink(path)
        return
    pending = [path]
    while pending:
        here = pending[-1]
        inner = []
        for name in _names(storage, here):
            child = _join(here, name)
            if storage.lstat(child).kind is FileKind.DIRECTORY:
                inner.append(child)
            else:
                storage.unlink(child)
        if inner:
            pending += inner  # emptied first; then this one is listed again, and goes
            continue
        pending.pop()
        if here:
            storage.rmdir(here)


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
