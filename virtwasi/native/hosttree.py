"""The host tree below an open directory, as path resolution sees it.

Resolution is the one algorithm of :mod:`virtwasi.filesystem.paths`; all it needs is ``lstat``
and ``readlink`` of a path relative to where it starts. :class:`DirTree` answers both from
a directory fd: the parent is reached beneath it without following any symlink
(:func:`~virtwasi.storage.hostdir.parent_of`: one ``openat2`` with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS``, or ``O_NOFOLLOW | O_DIRECTORY`` opens one component at a time) and
the last component is looked at with ``fstatat``/``readlinkat`` and
``AT_SYMLINK_NOFOLLOW``, so a symlink planted on the host, even between two checks, never
leads outside.
"""

from __future__ import annotations

import os

from ..filesystem import paths
from ..storage.base import Stat
from ..storage.hostdir import parent_of, to_stat

__all__ = ["DirTree", "parent_of", "resolve", "resolve_entry"]


class DirTree:
    """The tree below the directory ``fd`` (a :class:`~virtwasi.filesystem.paths.Lookup`)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def lstat(self, path: str) -> Stat:
        if path == "":
            return to_stat(os.fstat(self.fd))
        with parent_of(self.fd, path) as (parent, name):
            return to_stat(os.stat(name, dir_fd=parent, follow_symlinks=False))

    def readlink(self, path: str) -> str:
        with parent_of(self.fd, path) as (parent, name):
            return os.readlink(name, dir_fd=parent)


def resolve(fd: int, path: str, *, follow: bool, create: bool = False) -> paths.Resolved:
    """Resolve the guest's ``path`` inside the directory ``fd``; the result's path is
    relative to it (``""`` is the directory itself)."""
    return paths.resolve(DirTree(fd), "", path, follow=follow, create=create)


def walk_parents(fd: int, path: str) -> None:
    """The errors of the directories a new name passes through, a trailing slash walked
    as a link's (see :func:`paths.walk_parents`)."""
    paths.walk_parents(DirTree(fd), "", path, slash=True)


def walk_two(old_fd: int, old_path: str, new_fd: int, new_path: str, *,
             slash: bool = False) -> None:
    """What a link or rename answers before looking at either last name (see
    :func:`paths.walk_two`)."""
    paths.walk_two((DirTree(old_fd), "", old_path), (DirTree(new_fd), "", new_path),
                   slash=slash)


def resolve_entry(fd: int, path: str) -> tuple[paths.Resolved, bool]:
    """The name ``path`` ends in, never followed (see :func:`paths.resolve_entry`)."""
    return paths.resolve_entry(DirTree(fd), "", path)
