"""Copy-on-write: a read-only lower storage seen through a writable upper one.

:class:`OverlayStorage` serves the merge of two storages, as Linux's overlayfs does:

* a name is looked up in the upper layer first, then in the lower one unless it was
  deleted (a *whiteout*); a directory present in both lists the entries of both, the
  upper's winning on a name, sorted by name;
* the lower layer is only ever read. The first change to a lower file (opening it for
  writing, truncating it, setting its times, linking or renaming it) copies it up: its
  parent directories are made in the upper layer, then its bytes (with a progress bar on
  a terminal when that takes long) and its times;
* deleting a lower entry records a whiteout in the overlay's own memory, never a marker in
  either layer. A whiteout hides the lower entry and everything below it, and stays when
  the name is made again in the upper layer: a directory removed and made again is
  *opaque*, showing none of the lower's old entries;
* renaming a directory that has lower content copies that whole content up first, then
  renames in the upper layer (overlayfs without ``redirect_dir`` answers ``EXDEV``, which
  programs that call ``rename`` do not expect). A hard link to a lower file copies the file
  up first, then links in the upper layer; both names are then one file;
* inode numbers belong to the overlay: each object of either layer gets one the first
  time it is seen, and a copied-up file or directory keeps the number its lower original
  had. All entries report the overlay's own ``st_dev``, and a directory whose entries
  come from both layers reports one link, as in overlayfs (tools read that as unknown);
* a read-only handle opened on a lower file follows that file's copy-up: from then on it
  reads the upper copy, so every handle on one name sees every write made through any
  other, as on one POSIX inode (Linux's overlayfs does the same since 4.19). A handle on a
  lower file whose name is then deleted keeps reading what it had.

A copy-up appears whole or not at all, even when the process is killed half way
(``SIGKILL``, the OOM killer): the bytes go to a file under :data:`WORK_DIR`, a folder at the
root of the upper layer, which is synced where the upper can sync and only then renamed to
its real name. A killed copy-up leaves its partial file there, where no guest ever sees it
(the overlay hides that name at the root of the merge and refuses to make it), and the next
overlay over that upper layer discards it as it mounts; so two overlays must not share an
upper layer at once, as overlayfs requires too. On a host folder (or in memory) the rename
is atomic. An object store (S3 through fsspec) cannot rename: there the copy is uploaded
whole when it is closed, under the work name, and the rename is a server-side copy of that
whole object followed by a delete, so the real name still never shows part of the file,
and a kill between the two leaves only a work object for the next mount to discard.

Symlinks and hard links are offered when the upper layer offers them. Whiteouts live as
long as this object: with a host folder as the upper layer, changed and new files persist
in that folder, deletions of lower entries do not.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import itertools
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import suppress

from ..terminal.progress import Progress, progress
from .base import DirEntry, File, FileKind, Stat, Storage, posix_error
from .memfs import MemoryStorage
from .opening import Opening, open_rule
from .readonly import is_read_only
from .tree import remove_tree

_devices = itertools.count(0x0E7A0001)  # synthetic st_dev, one per overlay
_CHUNK = 1 << 20
_NOT_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})

WORK_DIR = ".virtwasi-copy-up"
"""The folder at the root of the upper layer where copy-ups are written before they are
renamed into place. The overlay never shows it, in either layer, and refuses to make it."""


class Layer(enum.Enum):
    UPPER = "upper"
    LOWER = "lower"


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


def _reserved(path: str) -> bool:
    """Whether ``path`` is the copy-up work folder or inside it."""
    return path.startswith(WORK_DIR) and _under(path, WORK_DIR)


class OverlayFile:
    """An open file of an :class:`OverlayStorage`: the upper layer's file, or a read-only
    handle on the lower's that moves to the upper copy when the file is copied up."""

    def __init__(self, overlay: OverlayStorage, path: str, layer: Layer, inner: File) -> None:
        self.path = path  # for messages, and to find the handles a copy-up moves
        self._overlay = overlay
        self._layer = layer
        self._inner = inner
        self._lock = overlay._lock

    def __repr__(self) -> str:
        return f"<OverlayFile {self.path!r} on the {self._layer.value} layer>"

    def _move_up(self, upper: File) -> None:
        """The file was copied up: read the copy from now on."""
        lower, self._inner, self._layer = self._inner, upper, Layer.UPPER
        lower.close()

    def _upper(self, *, writing: bool) -> File:
        if self._layer is Layer.UPPER:
            return self._inner
        if writing:  # a lower file is only ever open for reading
            raise posix_error(errno.EBADF, self.path)
        self._overlay._copy_up(self.path)  # moves this handle up too
        if self._layer is Layer.LOWER:  # its name was deleted: nowhere left to change it
            raise posix_error(errno.EROFS, self.path)
        return self._inner

    def readinto(self, buf: memoryview, offset: int) -> int:
        with self._lock:
            return self._inner.readinto(buf, offset)

    def write(self, data: memoryview | bytes, offset: int) -> int:
        with self._lock:
            return self._upper(writing=True).write(data, offset)

    def stat(self) -> Stat:
        with self._lock:
            return self._overlay._stat(self._layer, self._inner.stat())

    def truncate(self, size: int) -> None:
        with self._lock:
            if self._layer is Layer.LOWER:
                raise posix_error(errno.EINVAL, self.path)  # ftruncate of a read-only fd
            self._inner.truncate(size)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        with self._lock:
            if atime_ns is None and mtime_ns is None:
                self._inner.stat()  # still EBADF once closed
                return
            self._upper(writing=False).set_times(atime_ns, mtime_ns)

    def sync(self) -> None:
        with self._lock:
            self._inner.sync()

    def close(self) -> None:
        with self._lock:
            self._inner.close()
            self._overlay._forget_reader(self)


class OverlayStorage:
    """``lower`` (only ever read) under ``upper`` (a fresh :class:`MemoryStorage` when not
    given), merged copy-on-write as the module doc describes."""

    def __init__(self, lower: Storage, upper: Storage | None = None) -> None:
        for layer in (lower, upper):
            if isinstance(layer, str) or hasattr(layer, "__fspath__"):
                raise TypeError(f"OverlayStorage takes open storages, not {layer!r}: mount "
                                "Overlay(lower, upper) to name them by URL or path")
        self.lower = lower
        self.upper: Storage = MemoryStorage() if upper is None else upper
        if is_read_only(self.upper):
            raise ValueError("the upper layer of an overlay must be writable")
        self.supports_symlinks = self.upper.supports_symlinks
        self.supports_hardlinks = self.upper.supports_hardlinks
        self.supports_set_times: bool = getattr(self.upper, "supports_set_times", True)
        self.dev = next(_devices)
        self._lock = threading.RLock()
        self._whiteouts: set[str] = set()
        self._inos: dict[tuple[Layer, int], int] = {}
        self._next_ino = itertools.count(1)
        # Open read-only handles on lower files, by path, for a copy-up to move.
        self._readers: dict[str, weakref.WeakSet[OverlayFile]] = {}
        self._discard_partial_copies()

    def __repr__(self) -> str:
        return f"OverlayStorage(lower={self.lower!r}, upper={self.upper!r})"

    def close(self) -> None:
        """Release both layers: the overlay owns them (the lower is closed even when
        closing the upper fails, and that failure is raised)."""
        try:
            self.upper.close()
        finally:
            self.lower.close()

    @property
    def whiteouts(self) -> frozenset[str]:
        """The paths whose lower entries (and all below them) are hidden."""
        with self._lock:
            return frozenset(self._whiteouts)

    # -- layers and names ------------------------------------------------------------------

    def _ino(self, layer: Layer, ino: int) -> int:
        key = (layer, ino)
        found = self._inos.get(key)
        if found is None:
            found = self._inos[key] = next(self._next_ino)
        return found

    def _stat(self, layer: Layer, st: Stat) -> Stat:
        return dataclasses.replace(st, ino=self._ino(layer, st.ino), dev=self.dev)

    def _hidden(self, path: str) -> bool:
        """Whether a whiteout hides the lower entry at ``path``."""
        whiteouts = self._whiteouts
        if not whiteouts:
            return False
        if path in whiteouts:
            return True
        if len(whiteouts) < 8:  # fewer whiteouts than a deep path has ancestors: ask each
            return any(path.startswith(w) and path[len(w) : len(w) + 1] == "/" for w in whiteouts)
        slash = path.find("/")
        while slash != -1:
            if path[:slash] in whiteouts:
                return True
            slash = path.find("/", slash + 1)
        return False

    def _find(self, path: str) -> tuple[Layer, Stat]:
        """Which layer serves ``path``, and its status there (the layer's own numbers)."""
        if _reserved(path):
            raise posix_error(errno.ENOENT, path)
        try:
            return Layer.UPPER, self.upper.lstat(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise  # ENOTDIR, ELOOP: the upper's own non-directory hides the lower
            missing = exc
        if self._hidden(path):
            raise missing
        try:
            return Layer.LOWER, self.lower.lstat(path)
        except OSError as exc:
            # The lower's non-directory parent is hidden when the upper has it as a folder.
            if exc.errno in (errno.ENOTDIR, errno.ELOOP) and self._upper_is_dir(_parent(path)):
                raise missing from None
            raise

    def _upper_is_dir(self, path: str) -> bool:
        try:
            return self.upper.lstat(path).kind is FileKind.DIRECTORY
        except OSError:
            return False

    def _lower_has(self, path: str) -> bool:
        """Whether the lower layer shows an entry at ``path`` (one a change must hide)."""
        if self._hidden(path):
            return False
        try:
            self.lower.lstat(path)
        except OSError:
            return False
        return True

    def _white_out(self, path: str) -> None:
        """Hide the lower entry at ``path`` and all below it."""
        if not self._lower_has(path):
            return
        self._whiteouts = {w for w in self._whiteouts if not _under(w, path)}
        self._whiteouts.add(path)
        for name in [p for p in self._readers if _under(p, path)]:
            del self._readers[name]  # they keep reading what they had

    def _merged_listing(self, path: str, layer: Layer) -> dict[str, tuple[Layer, DirEntry]]:
        found: dict[str, tuple[Layer, DirEntry]] = {}
        if layer is Layer.UPPER:
            found = {e.name: (Layer.UPPER, e) for e in self.upper.listdir(path)}
        if path == "":
            found.pop(WORK_DIR, None)
        if self._hidden(path):
            return found
        try:
            lower = self.lower.listdir(path)
        except OSError as exc:
            if exc.errno not in _NOT_THERE:
                raise
            return found  # the upper's folder shadows a lower file, or the lower has none
        for entry in lower:
            if path == "" and entry.name == WORK_DIR:
                continue
            if entry.name not in found and _join(path, entry.name) not in self._whiteouts:
                found[entry.name] = (Layer.LOWER, entry)
        return found

    # -- copy-up ---------------------------------------------------------------------------

    def _adopt(self, path: str, lower: Stat) -> None:
        """The upper object now at ``path`` is the lower one copied up: same number."""
        self._inos[(Layer.UPPER, self.upper.lstat(path).ino)] = self._ino(Layer.LOWER, lower.ino)

    def _upper_dir(self, path: str) -> None:
        """Make sure the upper layer holds the directory ``path``, copying up its chain:
        from the nearest ancestor the upper holds, down (a loop: paths may be deep)."""
        chain: list[tuple[str, Stat]] = []
        while True:
            layer, st = self._find(path)
            if st.kind is not FileKind.DIRECTORY:
                raise posix_error(errno.ENOTDIR, path)
            if layer is Layer.UPPER:
                break
            chain.append((path, st))
            path = _parent(path)
        for path, st in reversed(chain):
            self.upper.mkdir(path)
            self._adopt(path, st)
            with suppress(OSError):  # an upper without settable times keeps its own
                self.upper.set_times(path, st.atime_ns, st.mtime_ns)

    def _copy_up(self, path: str, bar: Progress | None = None, *, content: bool = True) -> None:
        """Copy the lower entry at ``path`` (a file or symlink) to the upper layer."""
        layer, st = self._find(path)
        if layer is Layer.UPPER:
            return
        if st.kind is FileKind.DIRECTORY:
            self._upper_dir(path)
            return
        self._upper_dir(_parent(path))
        if st.kind is FileKind.SYMLINK:
            self.upper.symlink(self.lower.readlink(path), path)
        elif st.kind is FileKind.REGULAR:
            if bar is None:
                with progress(f"copying up {path}", total=st.size if content else 0) as own:
                    self._copy_file(path, st, own, content)
            else:
                self._copy_file(path, st, bar, content)
        else:
            raise posix_error(errno.ENOTSUP, path)  # a device or FIFO has no bytes to copy
        self._adopt(path, st)
        readers = self._readers.pop(path, None)
        for reader in list(readers or ()):
            reader._move_up(self.upper.open(path))

    def _copy_file(self, path: str, st: Stat, bar: Progress, content: bool) -> None:
        """Copy the lower file's bytes to a work file, then rename it to ``path``: the real
        name never shows part of the file, even if the process dies half way."""
        with suppress(FileExistsError):
            self.upper.mkdir(WORK_DIR)
        work = _join(WORK_DIR, uuid.uuid4().hex)
        target = self.upper.open(work, create=True, exclusive=True, writable=True)
        try:
            if content:
                self._copy_bytes(path, target, bar)
            with suppress(OSError):
                target.set_times(st.atime_ns, st.mtime_ns)
            target.sync()  # durable before its real name points at it
            target.close()
            self.upper.rename(work, path)
        except BaseException:
            with suppress(OSError):
                target.close()
            with suppress(OSError):
                self.upper.unlink(work)
            raise
        finally:
            with suppress(OSError):  # ENOTEMPTY while another copy is still on its way
                self.upper.rmdir(WORK_DIR)

    def _copy_bytes(self, path: str, target: File, bar: Progress) -> None:
        source = self.lower.open(path)
        try:
            buf = memoryview(bytearray(_CHUNK))
            offset = 0
            while n := source.readinto(buf, offset):
                target.write(buf[:n], offset)
                offset += n
                bar.advance(n)
        finally:
            source.close()

    def _discard_partial_copies(self) -> None:
        """Remove what copy-ups killed half way left in the upper layer's work folder."""
        with suppress(OSError):  # none there; or hidden all the same, for the next mount
            remove_tree(self.upper, WORK_DIR)

    def _lower_below(self, path: str) -> Iterator[tuple[str, Stat]]:
        """Every entry under the merged directory ``path`` that only the lower holds, each
        directory before what it contains (a stack of listings, not recursion: a tree may
        be deeper than Python's stack)."""
        pending = [self._merged_children(path)]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                continue
            child, layer, entry = step
            if layer is Layer.LOWER:
                yield child, self.lower.lstat(child)
                if entry.kind is FileKind.DIRECTORY:
                    pending.append(self._merged_children(child))
            elif entry.kind is FileKind.DIRECTORY and self._lower_has(child):
                pending.append(self._merged_children(child))

    def _merged_children(self, path: str) -> Iterator[tuple[str, Layer, DirEntry]]:
        """The entries of the merged directory ``path``, by name: path, layer, entry."""
        here = Layer.UPPER if self._upper_is_dir(path) else Layer.LOWER
        listing = sorted(self._merged_listing(path, here).items())
        return iter([(_join(path, name), layer, entry) for name, (layer, entry) in listing])

    def _copy_up_tree(self, path: str) -> None:
        """Make the upper directory ``path`` hold everything the merged one shows."""
        self._upper_dir(path)
        below = list(self._lower_below(path))
        total = sum(st.size for _, st in below if st.kind is FileKind.REGULAR)
        with progress(f"copying up {path}", total=total) as bar:
            for child, st in below:
                if st.kind is FileKind.DIRECTORY:
                    self._upper_dir(child)
                else:
                    self._copy_up(child, bar)

    def _forget_reader(self, file: OverlayFile) -> None:
        readers = self._readers.get(file.path)
        if readers is not None:
            readers.discard(file)
            if not readers:
                del self._readers[file.path]

    # -- the Storage protocol ----------------------------------------------------------------

    def lstat(self, path: str) -> Stat:
        with self._lock:
            layer, st = self._find(path)
            found = self._stat(layer, st)
            if st.kind is FileKind.DIRECTORY and layer is Layer.UPPER and self._lower_has(path):
                # Counting the subdirectories of both layers would cost a listing per
                # lookup; 1 tells find(1) and friends not to trust the count, as overlayfs.
                found = dataclasses.replace(found, nlink=1)
            return found

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> OverlayFile:
        with self._lock:
            layer: Layer | None = None
            kind: FileKind | None = None
            try:
                layer, st = self._find(path)
                kind = st.kind
            except FileNotFoundError:
                pass
            opening = open_rule(path, kind, create=create, exclusive=exclusive,
                                truncate=truncate, writable=writable)
            if opening is Opening.CREATE:
                if _reserved(path):
                    raise posix_error(errno.EACCES, path)
                self._upper_dir(_parent(path))
            elif layer is Layer.LOWER:
                if not (writable or truncate):
                    file = OverlayFile(self, path, Layer.LOWER, self.lower.open(path))
                    self._readers.setdefault(path, weakref.WeakSet()).add(file)
                    return file
                self._copy_up(path, content=not truncate)
            inner = self.upper.open(path, create=create, exclusive=exclusive,
                                    truncate=truncate, writable=writable)
            return OverlayFile(self, path, Layer.UPPER, inner)

    def listdir(self, path: str) -> list[DirEntry]:
        """The merged entries, sorted by name."""
        with self._lock:
            layer, st = self._find(path)
            if st.kind is not FileKind.DIRECTORY:
                raise posix_error(errno.ENOTDIR, path)
            merged = self._merged_listing(path, layer)
            return [
                DirEntry(name, self._ino(source, entry.ino), entry.kind)
                for name, (source, entry) in sorted(merged.items())
            ]

    def readlink(self, path: str) -> str:
        with self._lock:
            layer, _ = self._find(path)
            return (self.upper if layer is Layer.UPPER else self.lower).readlink(path)

    def _must_be_new(self, path: str) -> None:
        if _reserved(path):
            raise posix_error(errno.EACCES, path)
        try:
            self._find(path)
        except FileNotFoundError:
            return
        raise posix_error(errno.EEXIST, path)

    def mkdir(self, path: str) -> None:
        with self._lock:
            self._must_be_new(path)
            self._upper_dir(_parent(path))
            self.upper.mkdir(path)

    def rmdir(self, path: str) -> None:
        with self._lock:
            if path == "":
                raise posix_error(errno.EBUSY, path)
            layer, st = self._find(path)
            if st.kind is not FileKind.DIRECTORY:
                raise posix_error(errno.ENOTDIR, path)
            if self._merged_listing(path, layer):
                raise posix_error(errno.ENOTEMPTY, path)
            if layer is Layer.UPPER:
                self.upper.rmdir(path)
            self._white_out(path)

    def unlink(self, path: str) -> None:
        with self._lock:
            if path == "":
                raise posix_error(errno.EISDIR, path)
            layer, st = self._find(path)
            if st.kind is FileKind.DIRECTORY:
                raise posix_error(errno.EISDIR, path)
            if layer is Layer.UPPER:
                self.upper.unlink(path)
            self._white_out(path)

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            if src == "" or dst == "":
                raise posix_error(errno.EBUSY, src or dst)
            src_layer, src_st = self._find(src)
            _, parent = self._find(_parent(dst))
            if parent.kind is not FileKind.DIRECTORY:
                raise posix_error(errno.ENOTDIR, dst)
            if src == dst:
                return
            if _reserved(dst):
                raise posix_error(errno.EACCES, dst)
            is_dir = src_st.kind is FileKind.DIRECTORY
            if is_dir and _under(dst, src):
                raise posix_error(errno.EINVAL, dst)
            try:
                dst_layer, dst_st = self._find(dst)
            except FileNotFoundError:
                pass
            else:
                # Linux checks ancestry first: a directory cannot replace an ancestor of src.
                if dst_st.kind is FileKind.DIRECTORY and _under(src, dst):
                    raise posix_error(errno.ENOTEMPTY, dst)
                if dst_layer is src_layer and dst_st.ino == src_st.ino:
                    return  # one object under both names: POSIX does nothing
                if is_dir and dst_st.kind is not FileKind.DIRECTORY:
                    raise posix_error(errno.ENOTDIR, dst)
                if not is_dir and dst_st.kind is FileKind.DIRECTORY:
                    raise posix_error(errno.EISDIR, dst)
                if dst_st.kind is FileKind.DIRECTORY and self._merged_listing(dst, dst_layer):
                    raise posix_error(errno.ENOTEMPTY, dst)
            if is_dir:
                self._copy_up_tree(src)
            else:
                self._copy_up(src)
            self._upper_dir(_parent(dst))
            self.upper.rename(src, dst)
            self._white_out(src)
            self._white_out(dst)

    def symlink(self, target: str, path: str) -> None:
        with self._lock:
            self._must_be_new(path)
            if not self.supports_symlinks:
                raise posix_error(errno.ENOTSUP, path)
            self._upper_dir(_parent(path))
            self.upper.symlink(target, path)

    def link(self, src: str, dst: str) -> None:
        with self._lock:
            _, st = self._find(src)
            self._must_be_new(dst)
            if st.kind is FileKind.DIRECTORY:
                raise posix_error(errno.EPERM, src)
            if not self.supports_hardlinks:
                raise posix_error(errno.ENOTSUP, dst)
            self._upper_dir(_parent(dst))
            self._copy_up(src)
            self.upper.link(src, dst)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        with self._lock:
            layer, _ = self._find(path)
            if atime_ns is None and mtime_ns is None:
                return  # nothing to set: nothing to copy up
            if layer is Layer.LOWER:
                self._copy_up(path)
            self.upper.set_times(path, atime_ns, mtime_ns)
