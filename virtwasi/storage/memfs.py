"""The embedded default storage: a POSIX-faithful filesystem held in memory.

:class:`MemoryStorage` implements :class:`~.base.Storage` with real inodes: unique inode
numbers, link counts (a directory has 2 + its subdirectories, anything else one per name),
hard links, symlinks stored verbatim, nanosecond times updated where POSIX marks them, and
Linux's errno for every failure. Its open files (:class:`MemoryFile`) hold the inode, so they
keep working after their name is unlinked or renamed, as on POSIX. Each instance is its own
tree; :attr:`MemoryStorage.fs` exposes the same tree as an fsspec filesystem (see
:mod:`.memfs_fsspec`), to fill it before a run and read the results after.

Directory cookies: every entry gets a sequence number from its directory when it is created
(1, 2, 3, ...; a new name, a link or a rename into a new name is a new entry; a rename that
replaces an existing name keeps that name's number). :meth:`MemoryStorage.listdir_from`
returns ``(cookie, entry)`` pairs with cookies greater than the one given, in increasing
order, so a reader that resumes from the last cookie it saw never repeats an entry and never
skips one that survived, however the directory changed in between; ``0`` starts from the
beginning. :meth:`~MemoryStorage.listdir` gives the same order (creation order).

Where this differs from Linux, on purpose: ``open`` of a directory is ``EISDIR`` even
read-only (the protocol opens regular files only); a symlink in a parent component is
``ELOOP`` (the caller must resolve those, and a backend never follows one, like openat2's
``RESOLVE_NO_SYMLINKS``); directories report size 0; rmdir or rename of the root is
``EBUSY``, as ``rmdir("/")`` and ``rename("/", ...)`` are.

A regular file's bytes are held in chunks of :data:`CHUNK` bytes, only those written: a hole
(a write past the end, or a truncate that grows the file) costs nothing and reads as zeros,
as on tmpfs. The capacity counts the bytes held, not the sizes files report.

Every change holds one lock per storage, so the tree can be used from several threads
(say, a run in one and the fsspec facade in another) and each operation is atomic; a stat,
and an open that changes nothing, read without it unless a change overlaps them (see
``MemoryStorage._changes``).
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

from .base import NAME_MAX, DirEntry, FileKind, Stat, posix_error
from .opening import open_rule

if TYPE_CHECKING:
    from .memfs_fsspec import MemoryTreeFileSystem

__all__ = ["CHUNK", "DEFAULT_CAPACITY", "MAX_FILE_SIZE", "NAME_MAX", "MemoryFile",
           "MemoryStorage"]

SYMLINK_MAX = 4095  # bytes in a symlink target (PATH_MAX less the NUL)
MAX_FILE_SIZE = 2**63 - 1  # the largest off_t; beyond it is EFBIG
CHUNK = 1 << 20  # a regular file's bytes are held in chunks of this size, holes not at all
DEFAULT_CAPACITY = 4 << 30  # the embedded default (mem://, the default world): 4 GiB held
_ZEROS = memoryview(bytes(CHUNK))  # what a hole reads as

_devices = itertools.count(1)  # a distinct st_dev for every tree in the process


_REGULAR_KIND = FileKind.REGULAR
_SHORT_NAME = NAME_MAX // 4  # no name this long or shorter is over NAME_MAX bytes


def _encoded_len(text: str, path: str) -> int:
    """Length in bytes as the host would store it (names arrive decoded with
    surrogateescape, so any undecodable byte round-trips)."""
    try:
        return len(os.fsencode(text))
    except UnicodeEncodeError:
        raise posix_error(errno.EILSEQ, path) from None


def _check_name(name: str, path: str) -> None:
    if name in ("", ".", "..") or "\0" in name:
        raise posix_error(errno.EINVAL, path)
    if len(name) > NAME_MAX // 4 and _encoded_len(name, path) > NAME_MAX:
        raise posix_error(errno.ENAMETOOLONG, path)


def _down(directory: _Directory, rest: str, path: str) -> _Directory:
    """The directory ``rest`` below ``directory``, each component checked when the walk
    reaches it, as Linux does: a missing parent is ENOENT even when a later component is
    too long."""
    for name in rest.split("/"):
        _check_name(name, path)
        entry = directory.entries.get(name)
        if entry is None:
            raise posix_error(errno.ENOENT, path)
        node = entry[1]
        if not isinstance(node, _Directory):
            code = errno.ELOOP if isinstance(node, _Symlink) else errno.ENOTDIR
            raise posix_error(code, path)
        directory = node
    return directory


class _Node:
    __slots__ = ("atime", "ctime", "ino", "mtime", "nlink")
    kind: ClassVar[FileKind]
    size: int  # in bytes, as a stat reports it

    def __init__(self, ino: int, now: int) -> None:
        self.ino = ino
        self.nlink = 1
        self.atime = self.mtime = self.ctime = now


class _Regular(_Node):
    """``chunks[i]`` holds the bytes from ``i * CHUNK`` on, at most CHUNK of them and never
    past ``size``; whatever no chunk holds (a missing chunk, a short one's tail) is zeros.

    Its names and its open files hold it, and nothing else does for longer than a call:
    an unlinked file's bytes leave the count when the node itself goes, that is when its
    last open file closes (CPython frees an object as its last reference goes), so no
    count of open files is kept."""

    __slots__ = ("chunks", "held", "size", "tree")
    kind = FileKind.REGULAR

    def __init__(self, ino: int, now: int, tree: weakref.ref[MemoryStorage]) -> None:
        super().__init__(ino, now)
        self.chunks: dict[int, bytearray] = {}
        self.size = 0
        self.held = 0  # bytes in chunks: what the capacity counts
        self.tree = tree  # whose count they are in (a weak reference: a tree holds its nodes)

    def __del__(self) -> None:
        if self.nlink == 0 and self.held:
            tree = self.tree()
            if tree is not None:
                with tree._lock:
                    tree._used -= self.held


class _Symlink(_Node):
    __slots__ = ("size", "target")
    kind = FileKind.SYMLINK

    def __init__(self, ino: int, now: int, target: str, size: int) -> None:
        super().__init__(ino, now)
        self.target = target
        self.size = size


class _Directory(_Node):
    """Entries by name, each with its cookie, and by cookie as a listing hands them out
    (made once per entry, so a listing makes nothing per entry that outlives it). ``order``
    lists cookies ascending (dead ones too, until compacted) so listdir_from can bisect
    instead of scanning."""

    __slots__ = ("entries", "listed", "next_cookie", "order", "parent")
    kind = FileKind.DIRECTORY
    size = 0  # as a stat reports it

    def __init__(self, ino: int, now: int, parent: _Directory | None = None) -> None:
        super().__init__(ino, now)
        self.nlink = 2  # its own "." and its name in the parent
        self.parent = self if parent is None else parent  # the root is its own parent
        self.entries: dict[str, tuple[int, _Node]] = {}
        self.listed: dict[int, DirEntry] = {}  # live cookie -> its entry
        self.order: list[int] = []
        self.next_cookie = 0

    def add(self, name: str, node: _Node) -> None:
        self.next_cookie += 1
        cookie = self.next_cookie
        self.entries[name] = (cookie, node)
        self.listed[cookie] = DirEntry(name, node.ino, node.kind)
        self.order.append(cookie)

    def replace(self, name: str, node: _Node) -> None:
        # The name never stops existing, so it keeps its cookie (and its place in the order).
        cookie = self.entries[name][0]
        self.entries[name] = (cookie, node)
        self.listed[cookie] = DirEntry(name, node.ino, node.kind)

    def remove(self, name: str) -> None:
        cookie, _ = self.entries.pop(name)
        del self.listed[cookie]
        if len(self.order) > 2 * len(self.listed) + 32:
            self.order = [c for c in self.order if c in self.listed]

    def after(self, cookie: int) -> Iterator[tuple[int, DirEntry]]:
        listed = self.listed
        for c in itertools.islice(self.order, bisect_right(self.order, cookie), None):
            entry = listed.get(c)
            if entry is not None:
                yield c, entry


class MemoryStorage:
    """An in-memory POSIX tree (see the module doc). ``capacity`` bounds the bytes held by
    regular files (``ENOSPC`` beyond it; None: only the machine's memory bounds it);
    ``clock`` gives the time in nanoseconds (tests pass a fake one)."""

    supports_symlinks: bool
    supports_hardlinks: bool

    def __init__(
        self, *, capacity: int | None = None, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.supports_symlinks = True
        self.supports_hardlinks = True
        self.capacity = capacity
        self.dev = next(_devices)
        self._clock = clock
        self._lock = threading.RLock()
        # Every change to the tree happens under the lock, between two increments of this
        # count (odd while a change is under way; a change never starts inside another).
        # A read that finds it even, and the same after reading, saw no change, whole or
        # half done: under the GIL each load it made was atomic, so it read the tree as it
        # stood at one instant, as if it had held the lock. stat, and an open that changes
        # nothing, read so without the lock and take it only when a change overlaps them.
        # A lone atime store needs no window: it is one field, never seen half done.
        self._changes = 0
        self._weak = weakref.ref(self)  # what each regular file's node holds of its tree
        self._inos = itertools.count(1)
        self._used = 0
        self._root = _Directory(next(self._inos), clock())
        # The directory the last walk reached, by its path: the next walk starts there
        # when its path is near, so a deep path costs its new components, not its depth.
        self._trail: tuple[str, _Directory] = ("", self._root)
        self._fs: MemoryTreeFileSystem | None = None

    def __repr__(self) -> str:
        # fsspec tokenizes the facade by repr: the dev number keeps trees apart.
        return f"MemoryStorage(dev={self.dev})"

    @property
    def used_bytes(self) -> int:
        """Bytes held by regular files, counting unlinked ones still open."""
        return self._used

    @property
    def fs(self) -> MemoryTreeFileSystem:
        """This tree as an fsspec filesystem (one facade per storage, never shared)."""
        if self._fs is None:
            from .memfs_fsspec import MemoryTreeFileSystem

            self._fs = MemoryTreeFileSystem(self)
        return self._fs

    # -- paths ---------------------------------------------------------------------------

    def _locate(self, path: str) -> tuple[list[_Directory], str]:
        """The directories from the root down to the parent of ``path``'s last component,
        and that component; ``([], "")`` for the root itself (rename's ancestry checks need
        them all; everything else asks :meth:`_holder`)."""
        directory, name = self._holder(path)
        if directory is None:
            return [], ""
        chain = [directory]
        while chain[-1] is not self._root:
            chain.append(chain[-1].parent)
        chain.reverse()
        return chain, name

    def _holder(self, path: str) -> tuple[_Directory | None, str]:
        """The directory holding ``path``'s last component, and that component;
        ``(None, "")`` for the root itself."""
        if not path:
            return None, ""
        if "/" not in path and len(path) <= _SHORT_NAME and path not in (".", "..") and (
                "\0" not in path):
            return self._root, path  # a plain name in the root: nothing to walk or measure
        head, slash, name = path.rpartition("/")
        if slash and not head:
            raise posix_error(errno.EINVAL, path)  # an empty first component
        directory = self._reach(head, path) if slash else self._root
        _check_name(name, path)
        return directory, name

    def _reach(self, head: str, path: str) -> _Directory:
        """The directory ``head`` (a non-empty path of ``path``), walked from the trail
        when ``head`` is at it, below it or above it, else from the root."""
        at, node = self._trail
        if head == at:
            return node
        if not at:
            node = _down(node, head, path)
        elif head.startswith(at) and head[len(at)] == "/":
            node = _down(node, head[len(at) + 1 :], path)
        elif at.startswith(head) and at[len(head)] == "/":
            for _ in range(at.count("/", len(head))):
                node = node.parent
        else:
            node = _down(self._root, head, path)
        self._trail = (head, node)
        return node

    def _lookup(self, path: str) -> _Node:
        directory, name = self._holder(path)
        if directory is None:
            return self._root
        entry = directory.entries.get(name)
        if entry is None:
            raise posix_error(errno.ENOENT, path)
        return entry[1]

    def _directory(self, path: str) -> _Directory:
        node = self._lookup(path)
        if not isinstance(node, _Directory):
            raise posix_error(errno.ENOTDIR, path)
        return node

    def _beside_trail(self, path: str) -> _Node | None:
        """What ``path`` names when the directory of the last walk holds it, or None (a
        walk, or the lock, will tell). It changes nothing, not even the trail: a read
        without the lock may ask it, once it has looked for a name the root holds."""
        head, _, name = path.rpartition("/")
        at, directory = self._trail
        if head != at or not head:
            return None
        entry = directory.entries.get(name)
        return None if entry is None else entry[1]

    def _stat(self, node: _Node) -> Stat:
        return Stat(node.kind, node.size, node.ino, node.nlink, self.dev, node.atime,
                    node.mtime, node.ctime)

    # -- space ---------------------------------------------------------------------------

    def _charge(self, delta: int, path: str) -> None:
        if delta > 0 and self.capacity is not None and self._used + delta > self.capacity:
            raise posix_error(errno.ENOSPC, path)
        self._used += delta

    def _resize(self, node: _Regular, size: int, path: str) -> None:
        if size < 0:
            raise posix_error(errno.EINVAL, path)
        if size > MAX_FILE_SIZE:
            raise posix_error(errno.EFBIG, path)
        if size < node.size:  # growing only moves the end: the new bytes are a hole
            freed = 0
            chunks = node.chunks
            last = size // CHUNK
            for i in [i for i in chunks if i >= last]:
                chunk = chunks[i]
                keep = 0 if i > last else size - i * CHUNK
                if keep >= len(chunk):
                    continue
                freed += len(chunk) - keep
                if keep:
                    del chunk[keep:]
                else:
                    del chunks[i]
            node.held -= freed
            self._used -= freed
        node.size = size

    @staticmethod
    def _drop_link(node: _Node, now: int) -> None:
        node.nlink -= 1  # the last one gone, its bytes go with the node (see _Regular)
        node.ctime = now

    # -- the Storage protocol --------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release: the tree is memory, and stays readable (through :attr:`fs`
        too) until the storage is dropped."""

    def lstat(self, path: str) -> Stat:
        changes = self._changes
        if not changes & 1:  # no change under way: a read without the lock may do
            entry = self._root.entries.get(path)  # then a name that takes no walk
            node = self._beside_trail(path) if entry is None else entry[1]
            if node is not None:
                found = self._stat(node)
                if self._changes == changes:
                    return found
        with self._lock:
            return self._stat(self._lookup(path))

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> MemoryFile:
        changes = self._changes
        if not changes & 1 and not truncate and not (create and exclusive):
            # Opening a regular file as it stands changes nothing: a read without the
            # lock may do it, and the open rule lets it through (see below).
            entry = self._root.entries.get(path)  # then a name that takes no walk
            seen = self._beside_trail(path) if entry is None else entry[1]
            if type(seen) is _Regular:
                file = MemoryFile(self, seen, writable, path)
                if self._changes == changes:
                    return file
        lock = self._lock
        lock.acquire()  # not ``with``: every open comes here, and the statement costs more
        try:
            # A name the root holds needs no walk and no check (it was checked when made).
            parent: _Directory | None = self._root
            entry = self._root.entries.get(path)
            if entry is None:
                parent, name = self._holder(path)
                if parent is not None:
                    entry = parent.entries.get(name)
            found = self._root if parent is None else None if entry is None else entry[1]
            # Raises unless the open may go on; then a missing name is Opening.CREATE and
            # anything else Opening.FILE (a regular file), so ``found`` says which. The
            # common case, a regular file not created exclusively, needs no asking.
            if found is None or found.kind is not _REGULAR_KIND or (create and exclusive):
                open_rule(path, None if found is None else found.kind, create=create,
                          exclusive=exclusive, truncate=truncate, writable=writable)
            if found is None:
                assert parent is not None
                now = self._clock()
                node = _Regular(next(self._inos), now, self._weak)
                self._changes += 1
                parent.add(name, node)
                parent.mtime = parent.ctime = now
                self._changes += 1
            else:
                node = found  # type: ignore[assignment]  # open_rule lets a file through
                if truncate:
                    # Linux truncates even on a read-only open, and marks the times even
                    # when the file was already empty.
                    now = self._clock()
                    self._changes += 1
                    self._resize(node, 0, path)
                    node.mtime = node.ctime = now
                    self._changes += 1
            return MemoryFile(self, node, writable, path)
        finally:
            lock.release()

    def listdir(self, path: str) -> list[DirEntry]:
        with self._lock:
            return [entry for _, entry in self._read(path, 0)]

    def listdir_from(
        self, path: str, cookie: int = 0, limit: int | None = None
    ) -> list[tuple[int, DirEntry]]:
        """The entries whose cookie is greater than ``cookie`` (0: all), in cookie order,
        at most ``limit`` of them. Resuming from the last cookie returned neither repeats
        nor skips an entry that still exists (see the module doc)."""
        with self._lock:
            found = self._read(path, cookie)
            if limit is not None:
                found = itertools.islice(found, limit)
            return list(found)

    def _read(self, path: str, cookie: int) -> Iterator[tuple[int, DirEntry]]:
        """The entries of the directory ``path`` after ``cookie``, its atime marked."""
        directory = self._directory(path)
        directory.atime = self._clock()
        return directory.after(cookie)

    def mkdir(self, path: str) -> None:
        with self._lock:
            parent, name = self._holder(path)
            if parent is None or name in parent.entries:
                raise posix_error(errno.EEXIST, path)
            now = self._clock()
            made = _Directory(next(self._inos), now, parent)
            self._changes += 1
            parent.add(name, made)
            parent.nlink += 1  # the new directory's ".."
            parent.mtime = parent.ctime = now
            self._changes += 1

    def rmdir(self, path: str) -> None:
        with self._lock:
            parent, name = self._holder(path)
            if parent is None:
                raise posix_error(errno.EBUSY, path)
            entry = parent.entries.get(name)
            if entry is None:
                raise posix_error(errno.ENOENT, path)
            node = entry[1]
            if not isinstance(node, _Directory):
                raise posix_error(errno.ENOTDIR, path)
            if node.entries:
                raise posix_error(errno.ENOTEMPTY, path)
            now = self._clock()
            self._changes += 1
            parent.remove(name)
            parent.nlink -= 1
            parent.mtime = parent.ctime = now
            node.nlink = 0
            node.ctime = now
            if self._trail[1] is node:  # the trail steps back up to what still exists
                self._trail = (path.rpartition("/")[0], parent)
            self._changes += 1

    def unlink(self, path: str) -> None:
        with self._lock:
            parent, name = self._holder(path)
            if parent is None:
                raise posix_error(errno.EISDIR, path)
            entry = parent.entries.get(name)
            if entry is None:
                raise posix_error(errno.ENOENT, path)
            if isinstance(entry[1], _Directory):
                raise posix_error(errno.EISDIR, path)  # Linux's answer; POSIX allows EPERM
            now = self._clock()
            self._changes += 1
            parent.remove(name)
            parent.mtime = parent.ctime = now
            self._drop_link(entry[1], now)
            self._changes += 1

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            src_chain, src_name = self._locate(src)
            dst_chain, dst_name = self._locate(dst)
            if not src_chain or not dst_chain:
                raise posix_error(errno.EBUSY, src if not src_chain else dst)
            src_dir, dst_dir = src_chain[-1], dst_chain[-1]
            src_entry = src_dir.entries.get(src_name)
            if src_entry is None:
                raise posix_error(errno.ENOENT, src)
            node = src_entry[1]
            dst_entry = dst_dir.entries.get(dst_name)
            target = dst_entry[1] if dst_entry is not None else None
            # Linux checks ancestry before anything else (do_renameat2's "trap"): a directory
            # cannot move into its own subtree, nor replace one of the source's ancestors.
            if isinstance(node, _Directory) and any(d is node for d in dst_chain):
                raise posix_error(errno.EINVAL, dst)
            if isinstance(target, _Directory) and any(d is target for d in src_chain):
                raise posix_error(errno.ENOTEMPTY, dst)
            if target is node:
                return  # the same inode under both names: POSIX says do nothing
            if target is not None:
                if isinstance(node, _Directory) and not isinstance(target, _Directory):
                    raise posix_error(errno.ENOTDIR, dst)
                if not isinstance(node, _Directory) and isinstance(target, _Directory):
                    raise posix_error(errno.EISDIR, dst)
                if isinstance(target, _Directory) and target.entries:
                    raise posix_error(errno.ENOTEMPTY, dst)
            now = self._clock()
            self._changes += 1
            src_dir.remove(src_name)
            if target is None:
                dst_dir.add(dst_name, node)
            else:
                dst_dir.replace(dst_name, node)
                if isinstance(target, _Directory):
                    target.nlink = 0
                    target.ctime = now
                    dst_dir.nlink -= 1
                else:
                    self._drop_link(target, now)
            if isinstance(node, _Directory):
                node.parent = dst_dir
                if src_dir is not dst_dir:
                    src_dir.nlink -= 1  # its ".." now names the new parent
                    dst_dir.nlink += 1
            if isinstance(node, _Directory) or isinstance(target, _Directory):
                self._trail = ("", self._root)  # its path may name another directory now
            node.ctime = now
            src_dir.mtime = src_dir.ctime = dst_dir.mtime = dst_dir.ctime = now
            self._changes += 1

    def symlink(self, target: str, path: str) -> None:
        with self._lock:
            if not target:
                raise posix_error(errno.ENOENT, path)  # as symlink("", ...) does on Linux
            if "\0" in target:
                raise posix_error(errno.EINVAL, path)
            size = _encoded_len(target, path)
            if size > SYMLINK_MAX:
                raise posix_error(errno.ENAMETOOLONG, path)
            parent, name = self._holder(path)
            if parent is None or name in parent.entries:
                raise posix_error(errno.EEXIST, path)
            now = self._clock()
            made = _Symlink(next(self._inos), now, target, size)
            self._changes += 1
            parent.add(name, made)
            parent.mtime = parent.ctime = now
            self._changes += 1

    def readlink(self, path: str) -> str:
        with self._lock:
            node = self._lookup(path)
            if not isinstance(node, _Symlink):
                raise posix_error(errno.EINVAL, path)
            node.atime = self._clock()
            return node.target

    def link(self, src: str, dst: str) -> None:
        with self._lock:
            node = self._lookup(src)  # Linux resolves the source first: ENOENT wins
            parent, name = self._holder(dst)
            if parent is None or name in parent.entries:
                raise posix_error(errno.EEXIST, dst)
            if isinstance(node, _Directory):
                raise posix_error(errno.EPERM, src)
            now = self._clock()
            self._changes += 1
            parent.add(name, node)
            node.nlink += 1
            node.ctime = now
            parent.mtime = parent.ctime = now
            self._changes += 1

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        with self._lock:
            self._set_times(self._lookup(path), atime_ns, mtime_ns)

    def _set_times(self, node: _Node, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is None and mtime_ns is None:
            return  # POSIX: both UTIME_OMIT marks nothing, not even ctime
        now = self._clock()
        self._changes += 1
        if atime_ns is not None:
            node.atime = atime_ns
        if mtime_ns is not None:
            node.mtime = mtime_ns
        node.ctime = now
        self._changes += 1


class MemoryFile:
    """An open regular file of a :class:`MemoryStorage`: it holds the inode, not the name,
    until it is closed or dropped (either lets the inode go: see ``_Regular``)."""

    __slots__ = ("_lock", "_node", "_storage", "_writable", "path")

    def __init__(self, storage: MemoryStorage, node: _Regular, writable: bool, path: str) -> None:
        self._storage = storage
        self._lock = storage._lock
        self._node: _Regular | None = node  # None once closed
        self._writable = writable
        self.path = path  # the name it was opened by, for messages only

    def __repr__(self) -> str:
        node = self._node
        state = "closed" if node is None else f"ino={node.ino} open"
        return f"<MemoryFile {self.path!r} {state}>"

    def _check(self, offset: int = 0) -> _Regular:
        node = self._node
        if node is None:
            raise posix_error(errno.EBADF, self.path)
        if offset < 0:
            raise posix_error(errno.EINVAL, self.path)
        return node

    @property
    def writable(self) -> bool:
        return self._writable

    def readinto(self, buf: memoryview, offset: int) -> int:
        with self._lock:
            node = self._node  # _check's common case, inline: every read comes here
            if node is None or offset < 0:
                node = self._check(offset)
            want = buf.nbytes
            if want == 0:
                return 0
            node.atime = self._storage._clock()
            n = min(want, node.size - offset)
            if n <= 0:
                return 0
            if buf.format != "B" or buf.ndim != 1:
                buf = buf.cast("B")
            # One copy per chunk, straight into the caller's memory. Each export ends before
            # any write could need to resize the chunk.
            chunks = node.chunks
            i, lo = divmod(offset, CHUNK)
            chunk = chunks.get(i)
            if chunk is not None and lo + n <= len(chunk):  # the common case: one chunk
                with memoryview(chunk) as view:
                    buf[:n] = view[lo : lo + n]
                return n
            done = 0
            while done < n:
                at = offset + done
                i, lo = divmod(at, CHUNK)
                step = min(n - done, CHUNK - lo)
                chunk = chunks.get(i)
                have = 0 if chunk is None else min(max(len(chunk) - lo, 0), step)
                if have:
                    assert chunk is not None
                    with memoryview(chunk) as view:
                        buf[done : done + have] = view[lo : lo + have]
                if have < step:
                    buf[done + have : done + step] = _ZEROS[: step - have]
                done += step
            return n

    def write(self, data: memoryview | bytes, offset: int) -> int:
        with self._lock:
            node = self._node  # _check's common case, inline: every write comes here
            if node is None or offset < 0:
                node = self._check(offset)
            if not self._writable:
                raise posix_error(errno.EBADF, self.path)
            n = data.nbytes if isinstance(data, memoryview) else len(data)
            if n == 0:
                return 0  # POSIX marks no times for an empty write
            end = offset + n
            if end > MAX_FILE_SIZE:
                raise posix_error(errno.EFBIG, self.path)
            view = data if isinstance(data, memoryview) else memoryview(data)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            chunks = node.chunks
            first, lo = divmod(offset, CHUNK)
            chunk = chunks.get(first)
            if chunk is not None and lo <= len(chunk) and lo + n <= CHUNK:
                # The common case: within one chunk, with no gap before the write.
                cur = len(chunk)
                if lo + n > cur:
                    self._storage._charge(lo + n - cur, self.path)
                    node.held += lo + n - cur
                if lo < cur:
                    stop = min(lo + n, cur)
                    with memoryview(chunk) as target:
                        target[lo:stop] = view[: stop - lo]
                    if stop - lo < n:
                        chunk += view[stop - lo :]
                else:
                    chunk += view
                storage = self._storage
                now = storage._clock()
                storage._changes += 1  # what a stat reads (see MemoryStorage._changes)
                if end > node.size:
                    node.size = end
                node.mtime = node.ctime = now
                storage._changes += 1
                return n
            last = (end - 1) // CHUNK
            # Charge the growth first, so that a refusal leaves the file as it was.
            grow = 0
            for i in range(first, last + 1):
                chunk = chunks.get(i)
                grow += max(min(end - i * CHUNK, CHUNK) - (0 if chunk is None else len(chunk)), 0)
            self._storage._charge(grow, self.path)
            grown: list[tuple[int, int]] = []  # (chunk, its length before), to undo
            try:
                for i in range(first, last + 1):
                    base = i * CHUNK
                    lo, hi = max(offset, base) - base, min(end - base, CHUNK)
                    src = view[base + lo - offset : base + hi - offset]
                    chunk = chunks.get(i)
                    if chunk is None:
                        chunk = chunks[i] = bytearray()
                    cur = len(chunk)
                    if hi > cur:
                        grown.append((i, cur))
                    if lo < cur:
                        # Through a memoryview: bytearray slice assignment from anything
                        # but a bytearray would first copy the source into a temporary.
                        stop = min(hi, cur)
                        with memoryview(chunk) as target:
                            target[lo:stop] = src[: stop - lo]
                        src = src[stop - lo :]
                    elif lo > cur:
                        chunk.extend(_ZEROS[: lo - cur])  # the gap within a chunk is zeros
                    if len(src):
                        chunk += src  # over-allocates: appends stay linear
            except MemoryError:
                for i, cur in grown:
                    if cur:
                        del chunks[i][cur:]
                    else:
                        del chunks[i]
                self._storage._used -= grow
                raise posix_error(errno.ENOSPC, self.path) from None
            node.held += grow
            storage = self._storage
            now = storage._clock()
            storage._changes += 1  # what a stat reads (see MemoryStorage._changes)
            if end > node.size:
                node.size = end
            node.mtime = node.ctime = now
            storage._changes += 1
            return n

    def stat(self) -> Stat:
        storage = self._storage
        changes = storage._changes
        node = self._node
        if node is not None and not changes & 1:  # a read without the lock may do
            found = storage._stat(node)
            if storage._changes == changes:
                return found
        with self._lock:
            return storage._stat(self._check())

    def truncate(self, size: int) -> None:
        with self._lock:
            node = self._check()
            if not self._writable:
                raise posix_error(errno.EINVAL, self.path)  # Linux's ftruncate on a read-only fd
            storage = self._storage
            now = storage._clock()
            storage._changes += 1
            try:  # a size refused changes nothing, and the count is even again
                storage._resize(node, size, self.path)
                # Linux's ftruncate marks the times even when the size does not change.
                node.mtime = node.ctime = now
            finally:
                storage._changes += 1

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        with self._lock:
            self._storage._set_times(self._check(), atime_ns, mtime_ns)

    def sync(self) -> None:
        with self._lock:
            self._check()  # memory is as durable as this storage gets

    def close(self) -> None:
        # No lock: one store, after which any call (here or in another thread, which holds
        # the node it already found) fails. An unlinked file's bytes leave the count as
        # the node goes, under the lock (see _Regular).
        self._node = None

    def __enter__(self) -> MemoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
