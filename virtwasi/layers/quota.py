"""A quota on the tree below, written as an unprivileged layer: ``EDQUOT`` at the limit.

Stacked like any layer (see :mod:`.wrapping`; its types are ``quota-descriptor`` and
``quota-directory-entry-stream``), it counts what the tree below holds, the bytes of its regular
files and its inodes (files, directories, symlinks; each hard-linked file once), and
refuses whatever would take either past its limit:

- ``write`` and ``append`` that would grow a file past ``max_bytes`` are refused whole,
  before anything reaches the file; ``set_size`` too. Overwriting in place grows nothing
  and always passes;
- ``open_at`` with ``create`` of a missing file, ``create_directory_at`` and
  ``symlink_at`` past ``max_inodes``; ``link_at`` adds a name, not an inode, and passes,
  as do the other changes of metadata (``set_times``, ``set_times_at``).

Space comes back as on Linux: ``unlink_file_at`` or ``rename_at`` over a file frees its
bytes and inode only with its last name (a file with another hard link frees nothing), and
a file still open when its last name goes keeps counting, writes included, until its last
descriptor through the layer closes; ``open_at`` with ``truncate`` and a shrinking
``set_size`` give back the bytes cut off; ``remove_directory_at`` gives back an inode.

What the tree already holds counts: the layer walks it through the lower interface, once,
at the first call that could change what it holds (a tree only ever read is never walked).
From then on it counts what passes through it; changes made below by anything else (another
client of the implementation, the host) are not seen. A limit not given is not checked:
``max_bytes=None`` leaves writes with nothing to do but pass through, and with neither
limit nothing is ever walked or counted.

The refusal is ``quota`` (``EDQUOT``, "Disk quota exceeded", as Linux answers at a user's
quota), or ``insufficient-space`` (``ENOSPC``) with ``errno="ENOSPC"``, for guests that
know only a full disk. A write to a descriptor not open for writing still answers what
the implementation answers (``bad-descriptor``), quota or not. What reads passes through;
a function that writes, opens or changes the tree that the layer has no rule for is
refused (``unsupported``): a quota fails closed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    CREATE,
    DIRECTORY,
    EXCLUSIVE,
    READ,
    STREAM,
    SYMLINK_FOLLOW,
    TRUNCATE,
    WRITE,
    Category,
    Function,
)
from ..storage.base import PATH_MAX, FileKind, Stat
from ..world import Context, Definition, Func, ResourceType, Trap
from .wrapping import Rule, Wrapped, Wrapping

FileKey = tuple[int, int]  # (dev, ino): one file whatever its names
REFUSALS = {"EDQUOT": ErrorCode.QUOTA, "ENOSPC": ErrorCode.INSUFFICIENT_SPACE}


@dataclass(eq=False, slots=True)
class Tracked(Wrapped):
    """A quota handle: the lower handle, and the file it has open."""

    file: FileKey | None = None


def quota_layer(max_bytes: int | None = None, max_inodes: int | None = None, *,
                errno: str = "EDQUOT") -> Definition:
    """The definition of a quota layer; instantiate it with the interface as ``lower``.

    ``max_bytes`` limits the bytes of regular files, ``max_inodes`` the files, directories
    and symlinks of the whole tree below (every mount together); ``errno`` is the answer at
    a limit, ``"EDQUOT"`` or ``"ENOSPC"``.
    """
    for name, limit in (("max_bytes", max_bytes), ("max_inodes", max_inodes)):
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise ValueError(f"{name} must be a whole number of at least 0, got {limit!r}")
    if errno not in REFUSALS:
        raise ValueError(f"errno must be one of {', '.join(REFUSALS)}, got {errno!r}")
    refusal = REFUSALS[errno]

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        return _Quota(ctx, max_bytes, max_inodes, refusal).exports()

    return definition


def _below(pieces: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The path ``pieces`` and then ``name``, in pieces each short of PATH_MAX bytes."""
    if pieces and len(os.fsencode(pieces[-1])) + len(os.fsencode(name)) + 1 < PATH_MAX:
        return (*pieces[:-1], f"{pieces[-1]}/{name}")
    return (*pieces, name)


def _key(st: Stat) -> FileKey:
    return st.dev, st.ino


def _bytes(st: Stat) -> int:
    return st.size if st.kind is FileKind.REGULAR else 0


def _length(buf: Any) -> int:
    return buf.nbytes if isinstance(buf, memoryview) else len(buf)


class _Quota:
    """One quota layer instance: its usage count and its rules."""

    def __init__(self, ctx: Context, max_bytes: int | None, max_inodes: int | None,
                 refusal: ErrorCode) -> None:
        self.layer = Wrapping(ctx, "quota", Tracked, before_release=self._released)
        self.max_bytes, self.max_inodes, self.refusal = max_bytes, max_inodes, refusal
        self.bytes = self.inodes = 0
        self.counted = False
        self.open_files: Counter[FileKey] = Counter()  # files open through the layer
        self.orphans: set[FileKey] = set()  # open files whose last name is gone
        below = self.layer.call_below
        self._stat, self._stat_at, self._get_flags = (
            below("stat"), below("stat_at"), below("get_flags"))

    def exports(self) -> dict[str, Func | ResourceType]:
        layer = self.layer
        rules: dict[str, Rule] = {
            "open_at": self.open_at,
            "preopen": layer.forward,
            "create_directory_at": self.creating,
            "symlink_at": self.creating,
            "remove_directory_at": self.remove_directory_at,
            "unlink_file_at": self.unlink_file_at,
            "rename_at": self.rename_at,
            "link_at": layer.forward,  # a name, not an inode
            "set_times": layer.forward,
            "set_times_at": layer.forward,
        }
        if self.max_bytes is not None:  # otherwise writes have nothing to count
            rules |= {"write": self.write, "append": self.append, "set_size": self.set_size}
        else:
            rules |= dict.fromkeys(("write", "append", "set_size"), layer.forward)
        return layer.exports(rules, {Category.READS: layer.forward})

    # -- the count -------------------------------------------------------------------------
    def _ensure_counted(self) -> None:
        """Walk the tree below once, through the lower interface, counting what it holds
        (with no limit to check there is nothing to count)."""
        if self.counted or (self.max_bytes is None and self.max_inodes is None):
            return
        below = self.layer.below
        seen: dict[FileKey, int] = {}  # every file found, and its bytes
        for index in range(len(below.preopen_paths())):
            root = below.preopen(index)
            try:
                self._walk(root, seen)
            finally:
                self.layer.end_below("descriptor", root)
        self.bytes, self.inodes = sum(seen.values()), len(seen)
        self.counted = True

    def _walk(self, root: int, seen: dict[FileKey, int]) -> None:
        """Count what the preopen ``root`` holds, reaching each directory by its path from
        there: a loop holding one directory open at a time, not recursion, since a tree
        may be deeper than Python's stack or the fds a host grants. A path is kept in
        pieces each short of PATH_MAX, opened one from the other, since no longer path is
        looked up, while a tree may be deeper than that."""
        below = self.layer.below
        pending: list[tuple[str, ...]] = [()]
        while pending:
            pieces = pending.pop()
            directory = root
            try:
                for piece in pieces:
                    inner = below.open_at(directory, 0, piece, DIRECTORY, READ)[0]
                    if directory != root:
                        self.layer.end_below("descriptor", directory)
                    directory = inner
                for name in self._names(directory):
                    try:
                        st: Stat = below.stat_at(directory, 0, name)
                    except (FsError, OSError):  # gone since the listing, or not to be seen
                        continue
                    if _key(st) in seen:  # another name of a file already counted
                        continue
                    seen[_key(st)] = _bytes(st)
                    if st.kind is FileKind.DIRECTORY:
                        pending.append(_below(pieces, name))
            finally:
                if directory != root:
                    self.layer.end_below("descriptor", directory)

    def _names(self, directory: int) -> list[str]:
        below = self.layer.below
        stream = below.read_directory(directory)
        names: list[str] = []
        try:
            while (entry := below.read_directory_entry(stream)) is not None:
                names.append(entry.name)
        finally:
            self.layer.end_below(STREAM, stream)
        return names

    def _check(self, nbytes: int = 0, inodes: int = 0) -> None:
        """Refuse if adding ``nbytes`` and ``inodes`` would pass a limit."""
        self._ensure_counted()
        if nbytes > 0 and self.max_bytes is not None and self.bytes + nbytes > self.max_bytes:
            raise FsError(self.refusal)
        if inodes > 0 and self.max_inodes is not None and (
                self.inodes + inodes > self.max_inodes):
            raise FsError(self.refusal)

    def _account(self, nbytes: int = 0, inodes: int = 0) -> None:
        # Before the walk there is nothing to adjust: the walk will see the tree as it is.
        if self.counted:
            self.bytes = max(0, self.bytes + nbytes)
            self.inodes = max(0, self.inodes + inodes)

    def _grow(self, lower: int, growth: int) -> None:
        """Refuse ``growth`` more bytes past the limit, unless the descriptor is not open for
        writing: the implementation's own answer (bad-descriptor, invalid) comes first."""
        if growth > 0:
            try:
                self._check(nbytes=growth)
            except FsError:
                if self._get_flags(lower) & WRITE:
                    raise

    def _stat_or_none(self, lower: int, path: str, follow: bool) -> Stat | None:
        try:
            found: Stat = self._stat_at(lower, SYMLINK_FOLLOW if follow else 0, path)
            return found
        except (FsError, OSError):  # the call itself will answer why, if it matters
            return None

    def _name_gone(self, st: Stat) -> None:
        """``st``'s file lost a name: free it with its last one, or once it is closed."""
        if st.kind is FileKind.DIRECTORY:
            self._account(inodes=-1)
        elif st.nlink <= 1:
            if self.open_files[_key(st)]:
                self.orphans.add(_key(st))
            else:
                self._account(-_bytes(st), -1)

    def _released(self, rep: Tracked, name: str) -> None:
        """A quota handle is closing: the last descriptor of an orphan frees it."""
        key = rep.file
        if key is None:
            return
        self.open_files[key] -= 1
        if self.open_files[key] > 0:
            return
        del self.open_files[key]
        if key in self.orphans:
            self.orphans.discard(key)
            try:
                size = self._stat(rep.lower).size
            except (FsError, Trap):  # the layer itself is being torn down
                return
            self._account(-size, -1)

    # -- rules -----------------------------------------------------------------------------
    def _growing(self, function: Function, at_end: bool) -> Callable[..., Any]:
        """write (at an offset) and append (at the end): refused whole past the limit."""
        write_below, lower_of = self.layer.call_below(function.name), self.layer.lower_of
        ((_, rtype),) = self.layer.handle_slots(function)

        def growing(h: Any, buf: Any, *offset: int) -> int:
            lower = lower_of(h, rtype)
            size = self._stat(lower).size
            at = size if at_end else offset[0]
            self._grow(lower, at + _length(buf) - size)
            written: int = write_below(lower, buf, *offset)
            self._account(max(0, at + written - size))
            return written

        return growing

    def write(self, function: Function) -> Callable[..., Any]:
        return self._growing(function, at_end=False)

    def append(self, function: Function) -> Callable[..., Any]:
        return self._growing(function, at_end=True)

    def set_size(self, function: Function) -> Callable[..., Any]:
        set_below, lower_of = self.layer.call_below(function.name), self.layer.lower_of
        ((_, rtype),) = self.layer.handle_slots(function)

        def set_size(h: Any, size: int) -> None:
            lower = lower_of(h, rtype)
            growth = size - self._stat(lower).size
            self._grow(lower, growth)
            set_below(lower, size)
            self._account(growth)

        return set_size

    def open_at(self, function: Function) -> Callable[..., Any]:
        layer = self.layer
        open_below, lower_of = layer.call_below(function.name), layer.lower_of
        ((_, rtype),) = layer.handle_slots(function)
        result_type = layer.result_type(function)
        assert result_type is not None

        def open_at(h: Any, path_flags: int, path: str, open_flags: int, flags: int
                    ) -> tuple[int, FileKind, int]:
            directory = lower_of(h, rtype)
            before, create = None, False
            if open_flags & (CREATE | TRUNCATE):
                self._ensure_counted()
                # O_CREAT|O_EXCL never follows a final symlink: the name is what counts.
                exclusive = open_flags & CREATE and open_flags & EXCLUSIVE
                follow = bool(path_flags & SYMLINK_FOLLOW) and not exclusive
                before = self._stat_or_none(directory, path, follow)
                create = bool(open_flags & CREATE) and before is None
                if create:
                    self._check(inodes=1)
            opened, kind, got = open_below(directory, path_flags, path, open_flags, flags)
            rep = Tracked(opened)
            handle = layer.wrap(result_type, rep)
            if kind is FileKind.REGULAR:
                rep.file = _key(self._stat(opened))
                self.open_files[rep.file] += 1
            if create:
                self._account(inodes=1)
            if open_flags & TRUNCATE and before is not None:
                self._account(-_bytes(before))
            return handle, kind, got

        return open_at

    def creating(self, function: Function) -> Callable[..., Any]:
        """create_directory_at, symlink_at: one inode more."""
        make_below = self.layer.forward(function)

        def creating(*args: Any) -> None:
            self._check(inodes=1)
            make_below(*args)
            self._account(inodes=1)

        return creating

    def remove_directory_at(self, function: Function) -> Callable[..., Any]:
        remove_below = self.layer.forward(function)

        def remove_directory_at(h: Any, path: str) -> None:
            self._ensure_counted()
            remove_below(h, path)
            self._account(inodes=-1)

        return remove_directory_at

    def unlink_file_at(self, function: Function) -> Callable[..., Any]:
        unlink_below, lower_of = self.layer.call_below(function.name), self.layer.lower_of
        ((_, rtype),) = self.layer.handle_slots(function)

        def unlink_file_at(h: Any, path: str) -> None:
            directory = lower_of(h, rtype)
            self._ensure_counted()
            before = self._stat_or_none(directory, path, False)  # stat before it is gone
            unlink_below(directory, path)
            if before is not None:
                self._name_gone(before)

        return unlink_file_at

    def rename_at(self, function: Function) -> Callable[..., Any]:
        rename_below, lower_of = self.layer.call_below(function.name), self.layer.lower_of
        (_, rtype), (_, rtype2) = self.layer.handle_slots(function)

        def rename_at(h: Any, path: str, h2: Any, path2: str) -> None:
            source, target = lower_of(h, rtype), lower_of(h2, rtype2)
            self._ensure_counted()
            moved = self._stat_or_none(source, path, False)
            replaced = self._stat_or_none(target, path2, False)
            rename_below(source, path, target, path2)
            if moved is not None and replaced is not None and _key(moved) != _key(replaced):
                self._name_gone(replaced)

        return rename_at
