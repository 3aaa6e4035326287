"""A quota on the tree below, written as an unprivileged layer: ``EDQUOT`` at the limit.

Stacked like any layer (see :mod:`.wrapping`; its types are ``quota-descriptor`` and
``quota-directory-stream``), it counts what the tree below holds, the bytes of its regular
files and its inodes (files, directories, symlinks; each hard-linked file once), and
refuses whatever would take either past its limit:

- ``write`` and ``pwrite`` that would grow a file past ``max_bytes`` are refused whole,
  before anything reaches the file; ``set_size`` too. Overwriting in place grows nothing
  and always passes;
- ``open_at`` with ``CREAT`` of a missing file, ``mkdir_at`` and ``symlink_at`` past
  ``max_inodes``; ``link_at`` adds a name, not an inode, and passes;
- ``allocate`` carries no range in this interface, and the implementation never grows a
  file through it (``ENOTSUP``, as wasmtime): it is passed through.

Space comes back as on Linux: ``unlink_at`` or ``rename_at`` over a file frees its bytes and
inode only with its last name (a file with another hard link frees nothing), and a file
still open when its last name goes keeps counting, writes included, until its last
descriptor through the layer closes; ``open_at`` with ``TRUNC`` and a shrinking
``set_size`` give back the bytes cut off; ``rmdir_at`` gives back an inode.

What the tree already holds counts: the layer walks it through the lower interface, once,
at the first call that could change what it holds (a tree only ever read is never walked).
From then on it counts what passes through it; changes made below by anything else (another
client of the implementation, the host) are not seen. A limit not given is not checked:
``max_bytes=None`` leaves writes with nothing to do but pass through, and with neither
limit nothing is ever walked or counted.

The refusal is ``EDQUOT`` ("Disk quota exceeded", as Linux answers at a user's quota), or
``ENOSPC`` ("No space left on device") with ``errno="ENOSPC"``, for guests that know only a
full disk. A write to a descriptor not open for writing still answers what the
implementation answers (``EBADF``), quota or not. A function of the lower interface that
the layer has no rule for is refused with ``ENOTSUP``: a quota fails closed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ..storage.base import FileKind, Stat
from ..wasi.abi import Errno, Fdflags, Oflags, Rights, Whence
from ..wasi.errors import WasiError
from ..world import BoundFunc, Context, Definition, Func, ResourceType, Trap
from .wrapping import Rule, Wrapped, Wrapping, rules_for

FileKey = tuple[int, int]  # (dev, ino): one file whatever its names
REFUSALS = {"EDQUOT": Errno.DQUOT, "ENOSPC": Errno.NOSPC}

PASSED = frozenset({
    "preopen_count", "preopen", "preopen_name", "stat", "stat_at", "read", "pread", "seek",
    "fdstat", "advise", "sync", "allocate", "open_directory", "read_directory", "readlink_at",
    "link_at", "set_times", "set_times_at",
})
"""Change no usage: passed through unchanged."""

CLOSES = frozenset({"close", "close_directory"})
COUNTED = frozenset({"write", "pwrite", "set_size", "open_at", "set_flags", "mkdir_at",
                     "symlink_at", "rmdir_at", "unlink_at", "rename_at"})
"""Each with its own rule below."""

RULES = PASSED | CLOSES | COUNTED

_APPEND = int(Fdflags.APPEND)
_CREAT, _EXCL, _TRUNC = int(Oflags.CREAT), int(Oflags.EXCL), int(Oflags.TRUNC)
_DIRECTORY = int(Oflags.DIRECTORY)
_READDIR = int(Rights.FD_READDIR)
_FD_WRITE = int(Rights.FD_WRITE)
_CUR = int(Whence.CUR)
_WHOLE_LISTING = 1 << 20  # bytes of dirents asked for at a time while counting


@dataclass(eq=False, slots=True)
class Tracked(Wrapped):
    """A quota handle: the lower handle, whether writes append, and the file it has open."""

    append: bool = False
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


def _key(st: Stat) -> FileKey:
    return st.dev, st.ino


def _bytes(st: Stat) -> int:
    return st.size if st.kind is FileKind.REGULAR else 0


def _length(buf: Any) -> int:
    return buf.nbytes if isinstance(buf, memoryview) else len(buf)


class _Quota:
    """One quota layer instance: its usage count and its rules."""

    def __init__(self, ctx: Context, max_bytes: int | None, max_inodes: int | None,
                 refusal: Errno) -> None:
        self.layer = Wrapping(ctx, "quota", Tracked, before_release=self._released)
        self.max_bytes, self.max_inodes, self.refusal = max_bytes, max_inodes, refusal
        self.bytes = self.inodes = 0
        self.counted = False
        self.open_files: Counter[FileKey] = Counter()  # files open through the layer
        self.orphans: set[FileKey] = set()  # open files whose last name is gone
        self._stat = self._below("stat")
        self._stat_at = self._below("stat_at")
        self._seek = self._below("seek")
        self._fdstat = self._below("fdstat")

    def _below(self, name: str) -> Callable[..., Any]:
        return cast(BoundFunc, self.layer.below[name]).lowered

    def exports(self) -> dict[str, Func | ResourceType]:
        layer = self.layer
        rules: dict[str, Rule] = {
            **rules_for(PASSED, layer.forward),
            **rules_for(CLOSES, layer.close),
            "open_at": self.open_at,
            "set_flags": self.set_flags,
            "mkdir_at": self.creating,
            "symlink_at": self.creating,
            "rmdir_at": self.rmdir_at,
            "unlink_at": self.unlink_at,
            "rename_at": self.rename_at,
        }
        if self.max_bytes is not None:  # otherwise writes have nothing to count
            rules |= {"write": self.write, "pwrite": self.pwrite, "set_size": self.set_size}
        else:
            rules |= rules_for(frozenset({"write", "pwrite", "set_size"}), layer.forward)
        return layer.exports(rules, default=lambda bound: layer.refuse(bound, Errno.NOTSUP))

    # -- the count -------------------------------------------------------------------------
    def _ensure_counted(self) -> None:
        """Walk the tree below once, through the lower interface, counting what it holds
        (with no limit to check there is nothing to count)."""
        if self.counted or (self.max_bytes is None and self.max_inodes is None):
            return
        below = self.layer.below
        seen: dict[FileKey, int] = {}  # every file found, and its bytes
        for index in range(below.preopen_count()):
            root = below.preopen(index)
            try:
                self._walk(root, seen)
            finally:
                self.layer.close_below("close", root)
        self.bytes, self.inodes = sum(seen.values()), len(seen)
        self.counted = True

    def _walk(self, directory: int, seen: dict[FileKey, int]) -> None:
        below = self.layer.below
        stream = below.open_directory(directory)
        names: list[str] = []
        try:
            cookie = 0
            while batch := below.read_directory(stream, cookie, _WHOLE_LISTING):
                cookie += len(batch)
                names += [name.decode() for name, _, _ in batch if name not in (b".", b"..")]
        finally:
            self.layer.close_below("close_directory", stream)
        for name in names:
            try:
                st: Stat = below.stat_at(directory, name, False)
            except (WasiError, OSError):  # gone since the listing, or not to be looked at
                continue
            if _key(st) in seen:  # another name of a file already counted
                continue
            seen[_key(st)] = _bytes(st)
            if st.kind is FileKind.DIRECTORY:
                inner = below.open_at(directory, name, False, _DIRECTORY, 0, _READDIR, _READDIR)
                try:
                    self._walk(inner, seen)
                finally:
                    self.layer.close_below("close", inner)

    def _check(self, nbytes: int = 0, inodes: int = 0) -> None:
        """Refuse if adding ``nbytes`` and ``inodes`` would pass a limit."""
        self._ensure_counted()
        if nbytes > 0 and self.max_bytes is not None and self.bytes + nbytes > self.max_bytes:
            raise WasiError(self.refusal)
        if inodes > 0 and self.max_inodes is not None and (
                self.inodes + inodes > self.max_inodes):
            raise WasiError(self.refusal)

    def _account(self, nbytes: int = 0, inodes: int = 0) -> None:
        # Before the walk there is nothing to adjust: the walk will see the tree as it is.
        if self.counted:
            self.bytes = max(0, self.bytes + nbytes)
            self.inodes = max(0, self.inodes + inodes)

    def _grow(self, lower: int, growth: int) -> None:
        """Refuse ``growth`` more bytes past the limit, unless the descriptor is not open for
        writing: the implementation's own answer (EBADF, EINVAL) comes first."""
        if growth > 0:
            try:
                self._check(nbytes=growth)
            except WasiError:
                if self._fdstat(lower)[2] & _FD_WRITE:
                    raise

    def _stat_or_none(self, lower: int, path: str, follow: bool) -> Stat | None:
        try:
            found: Stat = self._stat_at(lower, path, follow)
            return found
        except (WasiError, OSError):  # the call itself will answer why, if it matters
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
            except (WasiError, Trap):  # the layer itself is being torn down
                return
            self._account(-size, -1)

    # -- rules -----------------------------------------------------------------------------
    def write(self, bound: BoundFunc) -> Callable[..., Any]:
        write_below, rep_of = bound.lowered, self.layer.rep_of
        ((_, rtype),) = self.layer.handle_slots(bound)

        def write(h: Any, buf: Any) -> int:
            rep: Tracked = rep_of(h, rtype)
            lower = rep.lower
            size = self._stat(lower).size
            at = size if rep.append else self._seek(lower, 0, _CUR)
            self._grow(lower, at + _length(buf) - size)
            written: int = write_below(lower, buf)
            self._account(max(0, at + written - size))
            return written

        return write

    def pwrite(self, bound: BoundFunc) -> Callable[..., Any]:
        pwrite_below, rep_of = bound.lowered, self.layer.rep_of
        ((_, rtype),) = self.layer.handle_slots(bound)

        def pwrite(h: Any, buf: Any, offset: int) -> int:
            rep: Tracked = rep_of(h, rtype)
            lower = rep.lower
            size = self._stat(lower).size
            at = size if rep.append else offset  # Linux appends whatever the offset
            self._grow(lower, at + _length(buf) - size)
            written: int = pwrite_below(lower, buf, offset)
            self._account(max(0, at + written - size))
            return written

        return pwrite

    def set_size(self, bound: BoundFunc) -> Callable[..., Any]:
        set_below, lower_of = bound.lowered, self.layer.lower_of
        ((_, rtype),) = self.layer.handle_slots(bound)

        def set_size(h: Any, size: int) -> None:
            lower = lower_of(h, rtype)
            growth = size - self._stat(lower).size
            self._grow(lower, growth)
            set_below(lower, size)
            self._account(growth)

        return set_size

    def open_at(self, bound: BoundFunc) -> Callable[..., Any]:
        open_below, lower_of, layer = bound.lowered, self.layer.lower_of, self.layer
        ((_, rtype),) = layer.handle_slots(bound)
        result_type = layer.result_type(bound)
        assert result_type is not None

        def open_at(h: Any, path: str, follow: bool, oflags: int, fdflags: int, rights: int,
                    inheriting: int) -> int:
            directory = lower_of(h, rtype)
            before, create = None, False
            if oflags & (_CREAT | _TRUNC):
                self._ensure_counted()
                # O_CREAT|O_EXCL never follows a final symlink: the name is what counts.
                exclusive = oflags & _CREAT and oflags & _EXCL
                before = self._stat_or_none(directory, path, follow and not exclusive)
                create = bool(oflags & _CREAT) and before is None
                if create:
                    self._check(inodes=1)
            opened = open_below(directory, path, follow, oflags, fdflags, rights, inheriting)
            rep = Tracked(opened, append=bool(fdflags & _APPEND))
            handle = layer.wrap(result_type, rep)
            st: Stat = self._stat(opened)
            if st.kind is FileKind.REGULAR:
                rep.file = _key(st)
                self.open_files[rep.file] += 1
            if create:
                self._account(inodes=1)
            if oflags & _TRUNC and before is not None:
                self._account(-_bytes(before))
            return handle

        return open_at

    def set_flags(self, bound: BoundFunc) -> Callable[..., Any]:
        set_below, rep_of = bound.lowered, self.layer.rep_of
        ((_, rtype),) = self.layer.handle_slots(bound)

        def set_flags(h: Any, flags: int) -> None:
            rep: Tracked = rep_of(h, rtype)
            set_below(rep.lower, flags)
            rep.append = bool(flags & _APPEND)

        return set_flags

    def creating(self, bound: BoundFunc) -> Callable[..., Any]:
        """mkdir_at, symlink_at: one inode more."""
        make_below = self.layer.forward(bound)

        def creating(*args: Any) -> None:
            self._check(inodes=1)
            make_below(*args)
            self._account(inodes=1)

        return creating

    def rmdir_at(self, bound: BoundFunc) -> Callable[..., Any]:
        remove_below = self.layer.forward(bound)

        def rmdir_at(h: Any, path: str) -> None:
            self._ensure_counted()
            remove_below(h, path)
            self._account(inodes=-1)

        return rmdir_at

    def unlink_at(self, bound: BoundFunc) -> Callable[..., Any]:
        unlink_below, lower_of = bound.lowered, self.layer.lower_of
        ((_, rtype),) = self.layer.handle_slots(bound)

        def unlink_at(h: Any, path: str) -> None:
            directory = lower_of(h, rtype)
            self._ensure_counted()
            before = self._stat_or_none(directory, path, False)  # stat before it is gone
            unlink_below(directory, path)
            if before is not None:
                self._name_gone(before)

        return unlink_at

    def rename_at(self, bound: BoundFunc) -> Callable[..., Any]:
        rename_below, lower_of = bound.lowered, self.layer.lower_of
        (_, rtype), (_, rtype2) = self.layer.handle_slots(bound)

        def rename_at(h: Any, path: str, h2: Any, path2: str) -> None:
            source, target = lower_of(h, rtype), lower_of(h2, rtype2)
            self._ensure_counted()
            moved = self._stat_or_none(source, path, False)
            replaced = self._stat_or_none(target, path2, False)
            rename_below(source, path, target, path2)
            if moved is not None and replaced is not None and _key(moved) != _key(replaced):
                self._name_gone(replaced)

        return rename_at
