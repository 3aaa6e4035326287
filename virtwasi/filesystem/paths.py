"""Path resolution: one component at a time, inside the directory it starts from.

Every ``path_*`` call names a path relative to a directory descriptor; that directory is
the sandbox. Resolution walks the path with ``lstat``/``readlink`` on the storage, follows
symlinks by splicing their targets into the walk, and refuses, as wasmtime does, anything
that would leave the starting directory: an absolute path, an absolute symlink target, or a
``..`` above the start (``EPERM``). More than 40 symlinks is ``ELOOP``. A trailing ``/``
(or a final ``.``/``..``) means the last component must be a directory. A component longer
than ``NAME_MAX`` bytes is ``ENAMETOOLONG`` when the walk reaches it, as on Linux, whatever
the storage could hold (an object store would take the name); a whole path of ``PATH_MAX``
bytes or more is, before the walk starts.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ..storage.base import NAME_MAX, PATH_MAX, FileKind, Stat, is_clean
from .errors import ErrorCode, FsError

MAX_SYMLINKS = 40
# Bound once: a member read off its enum class costs several times a global, and every
# path that is walked tests each component's kind.
_DIRECTORY, _SYMLINK = FileKind.DIRECTORY, FileKind.SYMLINK
_SHORT = NAME_MAX // 4  # no path this long or shorter has a component over NAME_MAX bytes


# A value: never change one. Not declared frozen because a frozen dataclass costs a
# microsecond more to make, and every open makes one; it stays hashable as if it were.
@dataclass(slots=True, unsafe_hash=True)
class Resolved:
    path: str
    """Where the path leads, relative to the storage's root."""
    stat: Stat | None
    """Its status (a symlink's own, when not followed), or None if it does not exist yet
    (its parent does, and is a directory)."""
    must_be_directory: bool
    """The path ended in ``/``, ``.`` or ``..``."""


class Lookup(Protocol):
    """All resolution needs of a tree: every Storage is one, and so is the native
    implementation's view of an open host directory."""

    def lstat(self, path: str) -> Stat: ...

    def readlink(self, path: str) -> str: ...


def _too_long(name: str) -> bool:
    return len(name) > _SHORT and len(os.fsencode(name)) > NAME_MAX


def _long_part(path: str) -> bool:
    """Whether a component of ``path`` is over NAME_MAX bytes. Only one of over _SHORT
    characters can be, and a window of that many holding a '/' holds no such component
    before its last '/': one C search per window finds it, not one step per component."""
    window = _SHORT + 1
    at, end = 0, len(path)
    while at + window <= end:
        slash = path.rfind("/", at, at + window)
        if slash < 0:
            return any(_too_long(part) for part in path.split("/"))
        at = slash + 1
    return False


def _join(parts: list[str]) -> str:
    return "/".join(parts)


def plain_name(start: str, path: str) -> str | None:
    """Where ``path`` leads from the directory ``start`` when it is one name with nothing to
    resolve but, maybe, a symlink in it: no ``/``, not ``.`` or ``..``, no NUL, too short to
    be over ``NAME_MAX``. None for any other path, which :func:`resolve` walks."""
    if (0 < len(path) <= _SHORT and "/" not in path and path != "." and path != ".."
            and "\0" not in path):
        if not start:
            return path
        if start[0] != "/" and start[-1] != "/" and "//" not in start:
            return f"{start}/{path}"
    return None


def _plain(storage: Lookup, start: str, path: str, follow: bool) -> tuple[str, Stat | None] | None:
    """The walk of :func:`resolve` for the common case, without its bookkeeping: ``path`` is
    plain components, meets no symlink it would follow and exists (or only its last
    component is missing): where it leads and its status. None for anything else, and the
    full walk starts over.

    A storage's ``lstat`` fails when a parent is not a directory (a backend never follows
    a symlink itself), so one call on the whole path checks every parent at once: the
    cost of a path is the storage's, not one call per component on top of it."""
    if not is_clean(path) or (start and (start[0] == "/" or start[-1] == "/" or "//" in start)):
        return None
    if len(path) > _SHORT:  # (no shorter path is too long, nor has a part too long)
        if len(path) >= PATH_MAX // 4 and len(os.fsencode(path)) >= PATH_MAX:
            return None  # the full walk refuses it before looking anything up
        if _long_part(path):
            return None  # the full walk says where, after the components before it
    where = f"{start}/{path}" if start else path
    try:
        stat = storage.lstat(where)
    except FileNotFoundError:
        # Only the last component may be missing: its parent must be a directory.
        parent = where.rpartition("/")[0]
        try:
            if parent != start and storage.lstat(parent).kind is not _DIRECTORY:
                return None
        except OSError:
            return None
        return where, None
    except OSError:
        return None
    if follow and stat.kind is _SYMLINK:
        return None
    return where, stat


def status(storage: Lookup, start: str, path: str, *, follow: bool) -> Stat | None:
    """``resolve(...).stat``, without making a :class:`Resolved` in the common case."""
    found = _plain(storage, start, path, follow)
    if found is not None:
        return found[1]
    return resolve(storage, start, path, follow=follow).stat


def resolve(storage: Lookup, start: str, path: str, *, follow: bool,
            create: bool = False) -> Resolved:
    """Resolve ``path`` from the directory ``start`` (a storage path). ``follow`` says
    whether a symlink in the last component is followed. ``create`` is an open's
    ``O_CREAT``, which makes only regular files: a name written with a trailing ``/`` is
    then ``EISDIR`` once its parents are walked, whatever it is (Linux never looks it up)."""
    if create and path.endswith("/") and path.rstrip("/").rpartition("/")[2] not in (
            "", ".", ".."):
        resolve(storage, start, path.rstrip("/"), follow=False)
        raise FsError(ErrorCode.IS_DIRECTORY, f"{path!r}: an open creates no directory")
    plain = _plain(storage, start, path, follow)
    if plain is not None:
        return Resolved(plain[0], plain[1], False)
    if len(path) >= PATH_MAX // 4 and "\0" not in path and len(os.fsencode(path)) >= PATH_MAX:
        raise FsError(ErrorCode.NAME_TOO_LONG, f"a path of {len(path)} characters")
    if path.startswith("/"):
        raise FsError(ErrorCode.NOT_PERMITTED, f"absolute path {path!r} leaves the directory")
    if "\0" in path:
        raise FsError(ErrorCode.INVALID, "a path may not contain NUL")
    if not path:
        raise FsError(ErrorCode.NO_ENTRY, "an empty path names nothing")
    base = [p for p in start.split("/") if p]
    pending = deque(path.split("/"))
    # Known before the walk: a symlink just before a final '.' must be followed.
    must_be_directory = path.endswith("/") or pending[-1] in (".", "..")
    walked: list[str] = []  # resolved components below ``start``
    stat: Stat | None = None
    expansions = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            if not pending and part == ".":
                must_be_directory = True
            continue
        last = not any(p not in ("", ".") for p in pending)
        if part == "..":
            if not walked:
                raise FsError(ErrorCode.NOT_PERMITTED, f"{path!r} climbs out of its directory")
            walked.pop()
            stat = None
            must_be_directory = must_be_directory or last
            continue
        if _too_long(part):
            raise FsError(ErrorCode.NAME_TOO_LONG, f"a component of {path!r} is too long")
        candidate = _join([*base, *walked, part])
        try:
            stat = storage.lstat(candidate)
        except FileNotFoundError:
            if last and "." not in pending:  # "new/." needs "new" as a directory to stand in
                walked.append(part)
                return Resolved(_join([*base, *walked]), None, must_be_directory)
            raise FsError(ErrorCode.NO_ENTRY, f"{candidate!r} does not exist") from None
        if stat.kind is _SYMLINK and (not last or follow or must_be_directory):
            expansions += 1
            if expansions > MAX_SYMLINKS:
                raise FsError(ErrorCode.LOOP, f"too many symlinks resolving {path!r}")
            target = storage.readlink(candidate)
            if target.startswith("/"):
                raise FsError(ErrorCode.NOT_PERMITTED,
                              f"symlink {candidate!r} points outside: {target!r}")
            if target.endswith("/") and last:
                must_be_directory = True
            pending.extendleft(reversed(target.split("/")))
            continue
        if not last and stat.kind is not _DIRECTORY:
            raise FsError(ErrorCode.NOT_DIRECTORY, f"{candidate!r} is not a directory")
        walked.append(part)
    full = _join([*base, *walked])
    if stat is None:  # nothing walked, or it ended on '..': stat what we stand on
        stat = storage.lstat(full)
    if must_be_directory and stat.kind is not _DIRECTORY:
        raise FsError(ErrorCode.NOT_DIRECTORY, f"{path!r} is not a directory")
    return Resolved(full, stat, must_be_directory)


def resolve_entry(storage: Lookup, start: str, path: str) -> tuple[Resolved, bool]:
    """The name ``path`` ends in, itself, as the calls that make, remove or rename a name
    see it: trailing slashes are set aside and the last component is never followed (a
    symlink written ``link/`` is still the symlink). Also whether there were slashes."""
    stripped = path.rstrip("/")
    if not stripped:  # "/" and the like: resolve says why not
        return resolve(storage, start, path, follow=False), False
    return resolve(storage, start, stripped, follow=False), stripped != path


def walk_parents(storage: Lookup, start: str, path: str, *, slash: bool = False) -> None:
    """Raise what walking the directories ``path`` passes through raises: every component
    before the last; the whole of an empty path (``ENOENT``), an absolute one or one
    ending in ``.`` or ``..``; and with ``slash`` the whole of one written with a trailing
    ``/`` (as a link's paths are walked)."""
    if not path:
        raise FsError(ErrorCode.NO_ENTRY, "an empty path names nothing")
    if path.startswith("/") or names_dot(path) or (slash and path.endswith("/")):
        head = path
    else:
        head = path.rstrip("/")
        head = head[:head.rfind("/") + 1]
    if head and "\0" not in head and resolve(storage, start, head, follow=True).stat is None:
        raise FsError(ErrorCode.NO_ENTRY, f"{head!r} does not exist")


def walk_two(old: tuple[Lookup, str, str], new: tuple[Lookup, str, str], *,
             slash: bool = False) -> None:
    """What a link or rename answers before the system call looks at either last name, as
    wasmtime walks them: the directories of the old name then of the new one (each a
    storage, start and path, walked by :func:`walk_parents`), then a NUL in either
    (``EINVAL``)."""
    for storage, start, path in (old, new):
        walk_parents(storage, start, path, slash=slash)
    if "\0" in old[2] or "\0" in new[2]:
        raise FsError(ErrorCode.INVALID, "a path may not contain NUL")


def names_dot(path: str) -> bool:
    """The last component of ``path`` is ``.`` or ``..`` (trailing slashes aside)."""
    return path.rstrip("/").rpartition("/")[2] in (".", "..")


def check_rename_dots(old_path: str, new_path: str) -> None:
    """rename's first rule once both names' directories are walked, as Linux and wasmtime
    answer it: either name ending in ``.`` or ``..`` is ``EBUSY``."""
    if names_dot(old_path) or names_dot(new_path):
        raise FsError(ErrorCode.BUSY, "cannot rename a directory someone stands in")


def check_rename_source(source: Resolved, *, start: bool = False) -> None:
    """rename's rules once its old name is resolved by :func:`resolve_entry`, before the
    new name is looked at: the directory the walk started from (``start``) is ``EBUSY``,
    a missing old name ``ENOENT``."""
    if start:
        raise FsError(ErrorCode.BUSY, "cannot rename a directory someone stands in")
    if source.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)


def check_rename(source: Resolved, source_slash: bool, target: Resolved,
                 target_slash: bool) -> None:
    """rename's rules for names written with trailing slashes (each resolved by
    :func:`resolve_entry`, the old one checked by :func:`check_rename_source`), as Linux
    and wasmtime answer them: a slash on either side says both are directories."""
    assert source.stat is not None
    if (source_slash or target_slash) and source.stat.kind is not _DIRECTORY:
        raise FsError(ErrorCode.NOT_DIRECTORY, "a trailing slash names a directory")
    if target_slash and target.stat is not None and target.stat.kind is not _DIRECTORY:
        raise FsError(ErrorCode.NOT_DIRECTORY, "a trailing slash names a directory")


def check_symlink_target(target: str, *, walked: bool) -> None:
    """What symlink refuses of a target, as Linux and wasmtime answer: an absolute one
    before anything else (``EPERM``: it would point outside); once the new name's
    directories are walked (``walked``, by :func:`walk_parents` as a link's), one holding
    NUL (``EINVAL``), an empty one (``ENOENT``) or one of ``PATH_MAX`` bytes or more
    (``ENAMETOOLONG``), before the name itself is looked at (``EEXIST`` comes after)."""
    if not walked:
        if target.startswith("/"):
            raise FsError(ErrorCode.NOT_PERMITTED, "an absolute symlink would point outside")
    elif "\0" in target:
        raise FsError(ErrorCode.INVALID, "a path may not contain NUL")
    elif not target:
        raise FsError(ErrorCode.NO_ENTRY, "a symlink needs a target")
    elif len(target) >= PATH_MAX // 4 and len(os.fsencode(target)) >= PATH_MAX:
        raise FsError(ErrorCode.NAME_TOO_LONG, f"a target of {len(target)} characters")
