"""The rules of opening a name, decided in one place for every backend and for the virtual
WASI implementation.

Given what a name is (its kind, or None when nothing has that name) and what the caller asks
for, :func:`open_rule` either raises the ``OSError`` Linux answers or says what to do next
(:class:`Opening`). It decides nothing about paths: the caller has already walked every
parent component (ENOENT, ENOTDIR or ELOOP for a parent come from that walk), and a
read-only mount has already answered EROFS (:class:`~.readonly.ReadOnlyStorage` refuses
``create``, ``truncate`` and ``writable`` before anything is looked up).

The rules, in the order they are checked (the order of Linux's ``open_last_lookups`` and
``do_open``, which wasmtime's preview 1 keeps; ``tests/test_memfs.py`` runs the in-memory
tree against the host kernel in lockstep):

1. no such name, no ``O_CREAT``: ENOENT.
2. no such name, ``O_CREAT``, but the name must be a directory (it ended in ``/``): EISDIR,
   as ``open("new/", O_CREAT)`` answers: ``O_CREAT`` only ever makes regular files.
3. no such name, ``O_CREAT``: :attr:`Opening.CREATE`.
4. the name exists and ``O_CREAT | O_EXCL`` is asked: EEXIST, whatever the name is, a
   dangling symlink included (``O_EXCL`` never follows a final symlink).
5. a symlink: ELOOP, as with ``O_NOFOLLOW``. The caller follows the symlinks it means to
   follow, so a symlink that gets here is the last component, to be opened as itself.
6. the name must be a directory (``O_DIRECTORY``, or a trailing ``/``) and is not: ENOTDIR.
7. a directory: with ``O_CREAT``, ``O_TRUNC`` or for writing it is EISDIR (Linux's
   ``do_open``); opened only to read it is :attr:`Opening.DIRECTORY` for a caller that
   opens directories (``open_directories``), and EISDIR otherwise: the storage protocol
   opens regular files only, so a backend answers EISDIR even to a read-only open.
8. a FIFO, socket or device: EACCES. Files are read and written at explicit offsets, which
   means nothing on those (and opening a FIFO would block).
9. anything else, a regular file or an entry whose store does not say what it is:
   :attr:`Opening.FILE`, truncated first when ``O_TRUNC`` asks (Linux truncates even on a
   read-only open).

Not here, because it needs no lookup: ``O_DIRECTORY`` together with ``O_CREAT``, ``O_EXCL``
or ``O_TRUNC`` is EINVAL before the path is even walked (Linux since 6.4, and wasmtime);
the caller checks the flags first.

The function is on the hot path of every open: plain comparisons, no exception unless it
refuses, the regular file answered first. A caller that has found a regular file, asked for
neither ``O_CREAT | O_EXCL`` nor a directory, may take :attr:`Opening.FILE` without the
call: rules 1 to 8 cannot apply.
"""

from __future__ import annotations

import enum
import errno

from .base import FileKind, posix_error

__all__ = ["Opening", "open_rule"]


class Opening(enum.Enum):
    """What an open goes on to do once :func:`open_rule` accepted it."""

    CREATE = "create"
    """Nothing has the name: make an empty regular file there, then open it."""
    FILE = "file"
    """Open the existing regular file (truncating it first if asked)."""
    DIRECTORY = "directory"
    """Open the existing directory to read it (only with ``open_directories``)."""


_REGULAR = FileKind.REGULAR
_DIRECTORY = FileKind.DIRECTORY
_SYMLINK = FileKind.SYMLINK
_SPECIAL = frozenset({FileKind.FIFO, FileKind.SOCKET, FileKind.CHARACTER_DEVICE,
                      FileKind.BLOCK_DEVICE})


def open_rule(
    path: str,
    kind: FileKind | None,
    *,
    create: bool = False,
    exclusive: bool = False,
    truncate: bool = False,
    writable: bool = False,
    must_be_directory: bool = False,
    open_directories: bool = False,
) -> Opening:
    """Decide an open of ``path`` (named in the error only), which is ``kind``, or missing
    when ``kind`` is None; raise the ``OSError`` Linux answers, or say what to do (see the
    module doc for every rule).

    ``create``/``exclusive``/``truncate`` are ``O_CREAT``/``O_EXCL``/``O_TRUNC``;
    ``writable`` asks for writing; ``must_be_directory`` is ``O_DIRECTORY`` or a path that
    ended in ``/``; ``open_directories`` says the caller can open a directory (the WASI
    implementation can, a storage backend cannot)."""
    if kind is None:
        if not create:
            raise posix_error(errno.ENOENT, path)
        if must_be_directory:
            raise posix_error(errno.EISDIR, path)
        return Opening.CREATE
    if create and exclusive:
        raise posix_error(errno.EEXIST, path)
    if kind is _REGULAR and not must_be_directory:
        return Opening.FILE
    if kind is _SYMLINK:
        raise posix_error(errno.ELOOP, path)
    if kind is _DIRECTORY:
        if create or truncate or writable or not open_directories:
            raise posix_error(errno.EISDIR, path)
        return Opening.DIRECTORY
    if must_be_directory:
        raise posix_error(errno.ENOTDIR, path)
    if kind in _SPECIAL:
        raise posix_error(errno.EACCES, path)
    return Opening.FILE
