"""Any fsspec filesystem as a :class:`~virtwasi.storage.base.Storage`.

fsspec speaks Python exceptions and whole objects, not POSIX, and this module maps it
honestly rather than pretending:

* errors go through one table (:func:`_posix_error`) to host errnos;
* a directory is whatever fsspec's ``info()`` calls one, read through the store's layout
  (an S3 directory is a key prefix, with a marker object when empty: :mod:`.fsspec_layout`);
  there are no symlinks or hard links (``ENOTSUP``), and times cannot be set (``ENOTSUP``;
  setting nothing succeeds, as on Linux); an entry the store keeps no time for (an
  archive's root, an implied directory) reports when the storage was opened;
* inode numbers are synthetic, stable per path for the storage's lifetime, and move with a
  rename;
* what a remote store said of a name is kept (:mod:`.metadata`): exact about this
  storage's own changes, trusted for ``cache_ttl`` seconds about everyone else's. On S3
  and FTP a name is looked up in its parent's listing, which answers for its siblings too
  (on S3 its first page only: a huge directory is not listed whole to find one name);
* reads stream from ``fs.open(path, "rb")`` (a zip member is never loaded whole; an S3
  object of up to 8 MiB is one GET at the first read, and a folder's small objects read
  in order are fetched ahead: :mod:`.readahead`); writes go
  to a local spill (memory, then a file: :mod:`.spill`) uploaded whole by ``sync()`` and
  ``close()``, because object stores cannot write in place. Every handle open on one name
  shares its spill, as handles share an inode, so they see each other's writes at once;
  other clients of the store see them once uploaded.
* ``rename`` is ``fs.mv``: copy then delete on most stores (S3), so it is not atomic;
  FTP renames on the server.
* an upload of a spill on disk (over 8 MiB) shows a progress bar on a terminal.

A failed upload raises :class:`UploadError` (``EIO``) and keeps the spill and the file
open, so a later ``sync()`` or ``close()`` can retry and nothing written is silently lost;
a file whose last close failed stays listed in :attr:`FsspecStorage.unsaved` until
:meth:`FsspecStorage.retry_uploads` saves it, or :meth:`FsspecStorage.keep_unsaved` copies
it to a host folder.

A file is never published half-written: while :meth:`FsspecStorage.abandoning` lasts (the
teardown of a guest that was stopped or trapped), closing a file whose written data was
never synced does not upload it; it stays in :attr:`FsspecStorage.unsaved` (which
:meth:`~FsspecStorage.retry_uploads` leaves alone) for :meth:`~FsspecStorage.keep_unsaved`.

A store that cannot be reached (refused, reset, timed out) is ``EIO`` too, in seconds: see
:mod:`.network` for the timeouts.

What each network store cannot do, and what the guest gets instead:

* S3: directories are prefixes (see :mod:`.fsspec_layout`); rename copies then deletes;
  symlinks, hard links and setting times are ``ENOTSUP``; times are ``LastModified``.
* FTP: symlinks, hard links and setting times are ``ENOTSUP`` (fsspec has no MFMT or
  SITE SYMLINK); rename is the server's RNFR/RNTO; times come from MLSD's ``modify``. Its
  filesystem keeps one control connection: once lost, every call is ``EIO`` until the
  mount is opened again.
* HTTP: read-only (``EROFS``); a directory is a page of links; reads are byte ranges.
* caching layers (``simplecache::`` and the like) are read-only (``EROFS``): a write would
  leave their local copies stale.

This class never refuses a change itself: a store that cannot be written (an archive, a web
server, a caching layer: :func:`~.fsspec_layout.read_only_store`) is served through
:class:`~.readonly.ReadOnlyStorage`, as :func:`virtwasi.storage.mounts.open_mount` does.

Serving a host folder through fsspec's ``file://`` would follow host symlinks: use
:class:`~virtwasi.storage.hostdir.HostDirStorage` for that.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import itertools
import os
import socket
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal, NoReturn

import fsspec
from fsspec.implementations.ftp import FTPFileSystem

from .archives import TarArchive, ZipArchive
from .base import DirEntry, FileKind, Stat, UploadError, posix_error
from .fsspec_layout import kind as _kind
from .fsspec_layout import layout_for, remote_store
from .fsspec_layout import time_ns as _time_ns
from .metadata import UNKNOWN, Entry, MetadataCache
from .network import listings_ttl
from .opening import Opening, open_rule
from .readahead import SMALL, ReadAhead
from .spill import Spill

# The one table: fsspec's exceptions to POSIX errnos (first match wins).
_ERRNOS: tuple[tuple[type[BaseException], int], ...] = (
    (FileNotFoundError, errno.ENOENT),
    (FileExistsError, errno.EEXIST),
    (IsADirectoryError, errno.EISDIR),
    (NotADirectoryError, errno.ENOTDIR),
    (PermissionError, errno.EACCES),
    (NotImplementedError, errno.ENOTSUP),
)

# A lost or refused connection, a timeout, an unknown host: the store is unreachable, which
# the guest sees as EIO (its file did not lose a connection). ftplib signals a connection
# closed under it with EOFError.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, socket.gaierror, socket.herror, EOFError,
)
_UNREACHABLE_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETUNREACH, errno.ENETDOWN, errno.ENOTCONN,
})

_COPY_CHUNK = 1 << 20
_devices = itertools.count(0x7F5F0001)  # synthetic st_dev, one per storage


def _unreachable(exc: BaseException) -> BaseException | None:
    """The network failure behind ``exc``, if there is one: some stores report a server
    that cannot be reached as "not found" (fsspec's HTTP), with the real cause chained."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, _UNREACHABLE) or (
                isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS):
            return cause
        cause = cause.__cause__
    return None


def _posix_error(exc: Exception, path: str) -> OSError:
    """An OSError with a host errno for whatever fsspec raised."""
    cause = _unreachable(exc)
    if cause is not None:
        return OSError(errno.EIO, f"store unreachable: {cause}", path)
    if isinstance(exc, OSError) and exc.errno:
        return exc  # already POSIX: ours, or a store backed by a real filesystem
    for kind, code in _ERRNOS:
        if isinstance(exc, kind):
            return posix_error(code, path)
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)}: {exc!r}", path)


def storage_error(exc: Exception, url: str) -> OSError:
    """What an fsspec call on ``url`` raised, as the guest would see it: an OSError with a
    host errno (``EIO`` for a store that cannot be reached)."""
    return _posix_error(exc, url)


@contextmanager
def _posix_errors(path: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = _posix_error(exc, path)
        if error is exc:
            raise
        raise error from exc


def release_filesystem(fs: fsspec.AbstractFileSystem) -> None:
    """Release what ``fs``, made for one storage, holds open: an archive's file, an FTP
    control connection (fsspec keeps no other per-mount resource: S3 and HTTP sessions
    belong to its shared instances)."""
    if isinstance(fs, ZipArchive | TarArchive):
        fs.close()
    elif isinstance(fs, FTPFileSystem):
        fs.ftp.close()


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


class _Content:
    """What every handle open on one name shares, as they would share an inode: the name to
    upload to (None once unlinked), whether the stored content is known to be empty, the
    written bytes not uploaded yet, and whether the name is only ours so far (``pending``:
    created here, no object stored yet)."""

    __slots__ = ("dirty", "empty", "handles", "mtime_ns", "path", "pending", "spill")

    def __init__(self, path: str, *, empty: bool) -> None:
        self.path: str | None = path
        self.empty = empty
        self.spill: Spill | None = None
        self.dirty = False
        self.pending = False
        self.mtime_ns = 0
        self.handles = 0

    def emptied(self) -> None:
        """The name was created or truncated on open: empty for every handle, and to be
        stored so (at the next sync or close, not before: until then the store keeps what
        it had, so that a file never closed is not left emptied)."""
        self.empty = True
        self.dirty = True
        self.mtime_ns = time.time_ns()  # truncating changes the file, as on Linux
        if self.spill is not None:
            self.spill.truncate(0)


ABANDONED = "still being written when the guest was stopped"
"""Why an abandoned file (see :meth:`FsspecStorage.abandoning`) was not saved."""


@dataclasses.dataclass(frozen=True)
class UnsavedFile:
    """Written data a storage could not store: ``path`` in the storage, ``reason`` (an
    upload's failure, or :data:`ABANDONED`), and the host file it was ``kept`` in (None
    if even that failed; then ``reason`` says why)."""

    path: str
    reason: str
    kept: Path | None = None


class FsspecFile:
    """An open regular file of a :class:`FsspecStorage` (see the module doc)."""

    def __init__(self, storage: FsspecStorage, content: _Content, *, writable: bool,
                 last: Stat) -> None:
        self._storage = storage
        self._content = content
        self._writable = writable
        self._reader: Any = None
        self._closed = False
        self._abandoned = False
        self._last = last  # what the open learned: not asked again
        content.handles += 1

    @property
    def path(self) -> str | None:
        """Where this file's data is uploaded; None once its name was unlinked."""
        return self._content.path

    def _name(self) -> str:
        return "<unlinked>" if self.path is None else self.path

    def _check_open(self) -> None:
        if self._closed:
            raise posix_error(errno.EBADF, self._name())

    def _check_mutable(self) -> None:
        self._check_open()
        if not self._writable:
            raise posix_error(errno.EBADF, self._name())

    def _open_reader(self) -> Any:
        if self._reader is None:
            if self.path is None:
                raise posix_error(errno.ENOENT, self._name())
            self._reader = self._storage._open_stored(self.path, self._last.size)
        return self._reader

    def _drop_reader(self) -> None:
        """Forget the reader: the stored content changed, so reopen on the next read."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _keep_readable(self) -> None:
        """The name is about to be unlinked: keep what can still be read."""
        if self._content.spill is None and not self._content.empty:
            # If this fails, reads fail later as the store says; the unlink goes on.
            with suppress(Exception):
                self._open_reader()

    def _ensure_spill(self, *, copy: bool = True) -> Spill:
        content = self._content
        if content.spill is None:
            spill = Spill(url=self._storage.url(content.path))
            if copy and not content.empty:
                chunk = memoryview(bytearray(_COPY_CHUNK))
                offset = 0
                while n := self.readinto(chunk, offset):
                    spill.write(chunk[:n], offset)
                    offset += n
            content.spill = spill
        self._drop_reader()
        return content.spill

    def readinto(self, buf: memoryview, offset: int) -> int:
        self._check_open()
        if offset < 0:
            raise posix_error(errno.EINVAL, self._name())
        if self._content.spill is not None:
            return self._content.spill.readinto(buf, offset)
        if self._content.empty:
            return 0
        try:
            reader = self._open_reader()
            reader.seek(offset)
            got = reader.readinto(buf) or 0
            while 0 < got < buf.nbytes:  # some file objects return short reads
                n = reader.readinto(buf[got:]) or 0
                if n == 0:
                    break
                got += n
            return int(got)
        except Exception as exc:
            error = _posix_error(exc, self._name())
            if error is exc:
                raise
            raise error from exc

    def _written(self) -> None:
        self._content.dirty = True
        self._content.mtime_ns = time.time_ns()

    def write(self, data: memoryview | bytes, offset: int) -> int:
        self._check_mutable()
        if offset < 0:
            raise posix_error(errno.EINVAL, self._name())
        n = self._ensure_spill().write(data, offset)
        self._written()
        return n

    def truncate(self, size: int) -> None:
        self._check_mutable()
        if size < 0:
            raise posix_error(errno.EINVAL, self._name())
        self._ensure_spill(copy=size > 0).truncate(size)
        self._written()

    def stat(self) -> Stat:
        self._check_open()
        content = self._content
        if content.path is not None and not content.dirty:
            with suppress(OSError):  # gone behind our back: report what we last knew
                self._last = self._storage.lstat(content.path)
        if content.spill is None:
            if content.dirty and content.empty:  # truncated here, stored at sync or close
                return dataclasses.replace(self._last, size=0, mtime_ns=content.mtime_ns)
            return self._last
        mtime_ns = content.mtime_ns if content.dirty else self._last.mtime_ns
        return dataclasses.replace(self._last, size=content.spill.size, mtime_ns=mtime_ns)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._check_open()
        if atime_ns is None and mtime_ns is None:
            return  # setting nothing succeeds, as on Linux
        raise posix_error(errno.ENOTSUP, self._name())

    def sync(self) -> None:
        self._check_open()
        content = self._content
        if not content.dirty or content.path is None:
            return
        full = self._storage._full(content.path)
        try:
            if content.spill is None:
                self._storage.fs.pipe_file(full, b"")  # created or truncated, never written
            else:
                content.spill.upload(self._storage.fs, full)
        except Exception as exc:
            raise UploadError(errno.EIO, f"not saved, upload failed: {exc}",
                              content.path) from exc
        content.dirty = False
        content.pending = False
        size = content.spill.size if content.spill is not None else 0
        self._storage._cache.note(content.path, Entry(FileKind.REGULAR, size, content.mtime_ns))
        self._storage._ahead.forget(content.path)

    def close(self) -> None:
        if self._closed or self._abandoned:
            return
        content = self._content
        if (self._storage._abandoning and content.dirty and content.path is not None
                and content.handles == 1):
            # The last handle on data never synced, closed because its guest was stopped:
            # not published half-written, kept (spill and all) for keep_unsaved().
            self._abandoned = True
            self._storage._unsaved[self] = ABANDONED
            return
        try:
            self.sync()
        except UploadError as exc:
            # Stay open, spill and all, held by the storage even once nobody else holds
            # this file (a torn-down client), so that retry_uploads() can save it.
            self._storage._unsaved[self] = f"upload failed: {exc.__cause__ or exc}"
            raise
        self._release()

    def _release(self) -> None:
        self._closed = True
        self._drop_reader()
        self._storage._release(self)

    def _keep(self, dest: Path) -> None:
        """Copy the written data to the host file ``dest`` (made with its folders)."""
        spill = self._content.spill
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as out:
            if spill is not None:
                chunk = memoryview(bytearray(_COPY_CHUNK))
                offset = 0
                while n := spill.readinto(chunk, offset):
                    out.write(chunk[:n])
                    offset += n


class FsspecStorage:
    """The directory ``root`` of the fsspec filesystem ``fs``.

    The root always exists (an object store's empty prefix lists as an empty directory).
    How directories are kept depends on the store (:mod:`.fsspec_layout`). A store that
    cannot be written is served read-only by wrapping this (see the module doc).

    ``owns_fs`` says ``fs`` was made for this storage alone (opened from a URL): then
    :meth:`close` also releases what the filesystem holds for it (an archive's file, an
    FTP control connection). Otherwise the filesystem stays its maker's to close.

    What the storage learns of a remote store's names is kept for ``cache_ttl`` seconds
    (``None``: as long as the storage; ``0``: not at all), exact about its own changes
    (:mod:`.metadata`). By default (``"filesystem"``) it follows the filesystem's own listings cache
    (fsspec's ``use_listings_cache`` and ``listings_expiry_time``), which a mount opened
    from a URL turns off so that one cache, with one rule, answers. A local store (memory,
    an archive) is asked every time: that costs no request.
    """

    supports_symlinks = False
    supports_hardlinks = False
    supports_set_times = False

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, *, owns_fs: bool = False,
        cache_ttl: float | Literal["filesystem"] | None = "filesystem",
    ) -> None:
        self.fs = fs
        self._owns_fs = owns_fs
        self._closed = False
        self._layout = layout_for(fs)
        if cache_ttl == "filesystem":
            cache_ttl = listings_ttl(fs)
        self._cache = MetadataCache(cache_ttl if remote_store(fs) else 0)
        self._ahead = ReadAhead(lambda path: self._layout.fetch(self.fs, self._full(path)))
        self._in_order: tuple[str, int, list[str]] = ("", -1, [])  # see _small_files
        self._root: str = fs._strip_protocol(root).rstrip("/")
        self._dev = next(_devices)
        # What an entry the store keeps no time for (an archive's root, a directory that
        # is only a prefix) reports: when it was mounted, not the epoch.
        self._mounted_ns = time.time_ns()
        self._inos: dict[str, int] = {}
        self._next_ino = itertools.count(1)
        self._files: weakref.WeakSet[FsspecFile] = weakref.WeakSet()
        self._contents: dict[str, _Content] = {}  # by name, while a handle has it open
        # Files closed but not stored: why (an upload's failure, or ABANDONED).
        self._unsaved: dict[FsspecFile, str] = {}
        self._abandoning = False
        self._ino("")

    @property
    def open_files(self) -> int:
        """How many files opened through this storage are open now (not yet closed)."""
        return len(self._files)

    @property
    def unsaved(self) -> list[str]:
        """Files closed while their upload failed (a client torn down while the store was
        unreachable, say), whose written data waits for :meth:`retry_uploads`, and files
        abandoned by a stopped guest (see :meth:`abandoning`)."""
        return sorted(f._name() for f in self._unsaved)

    def retry_uploads(self) -> None:
        """Upload and close every :attr:`unsaved` file whose upload failed; ``UploadError``
        if one still fails. Abandoned files (see :meth:`abandoning`) are left as they are:
        only :meth:`keep_unsaved` takes them."""
        failures = []
        for f in list(self._unsaved):
            if f._abandoned:
                continue
            try:
                f.close()
            except UploadError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    @contextmanager
    def abandoning(self) -> Iterator[None]:
        """While this lasts, a close of the last handle on data written since it was last
        stored does not upload it: the file was not closed by a guest that ran to its end,
        so its content may be half-written. It is kept in :attr:`unsaved` instead."""
        self._abandoning = True
        try:
            yield
        finally:
            self._abandoning = False

    def keep_unsaved(self, folder: Path) -> list[UnsavedFile]:
        """Copy the written data of every :attr:`unsaved` file to ``folder``/its path and
        release it; what was kept, by path. A file that cannot be copied stays unsaved
        (``kept`` None)."""
        kept: list[UnsavedFile] = []
        done: set[int] = set()  # handles sharing one content are kept once
        for f in sorted(self._unsaved, key=lambda f: f._name()):
            reason = self._unsaved[f]
            if id(f._content) in done:
                f._release()
                continue
            name = f._name()
            dest = folder / name.lstrip("/")
            try:
                f._keep(dest)
            except OSError as exc:
                kept.append(UnsavedFile(name, f"{reason}; could not keep a copy: {exc}"))
                continue
            done.add(id(f._content))
            kept.append(UnsavedFile(name, reason, dest))
            f._release()
        return kept

    def close(self) -> None:
        """Close every file still open through this storage, uploading what each holds,
        then release what the filesystem holds for this storage alone (``owns_fs``).

        A failed upload raises :class:`UploadError` and keeps its file in :attr:`unsaved`;
        while anything is unsaved the filesystem is kept, so that :meth:`retry_uploads`
        can still save it (and a later ``close()`` then releases it). Once released,
        closing again does nothing."""
        failures = []
        for f in [f for f in self._files if f not in self._unsaved]:
            try:
                f.close()
            except UploadError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
        self._ahead.close()
        if self._closed or self._unsaved:
            return
        self._closed = True
        if self._owns_fs:
            release_filesystem(self.fs)

    def url(self, path: str | None) -> str | None:
        """Where ``path`` is stored, as a URL without credentials (for the user to find
        it); None for a store that lives only as long as this process (``memory://``) or
        a name that is gone."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple | list) else (
            self.fs.protocol,)
        if path is None or "memory" in protocols:
            return None
        full = self._full(path)
        if isinstance(self.fs, FTPFileSystem):
            return f"ftp://{self.fs.host}:{self.fs.port}/{full.lstrip('/')}"
        return str(self.fs.unstrip_protocol(full))

    # -- bookkeeping ---------------------------------------------------------------------

    def _full(self, path: str) -> str:
        if not path:
            return self._root
        return f"{self._root}/{path}" if self._root else path

    def _ino(self, path: str) -> int:
        ino = self._inos.get(path)
        if ino is None:
            ino = self._inos[path] = next(self._next_ino)
        return ino

    def _handles(self, content: _Content) -> list[FsspecFile]:
        return [f for f in self._files if f._content is content]

    def _share(self, path: str, *, emptied: bool) -> _Content:
        """The content every handle open on ``path`` shares; ``emptied`` if the open just
        created or truncated the name."""
        content = self._contents.get(path)
        if content is None:
            content = self._contents[path] = _Content(path, empty=emptied)
            content.dirty = emptied  # to be stored empty, even if nothing is written
            if emptied:
                content.mtime_ns = time.time_ns()
        elif emptied:
            content.emptied()
            for f in self._handles(content):
                f._drop_reader()
        return content

    def _release(self, f: FsspecFile) -> None:
        """``f`` closed: the last handle on a content drops its spill."""
        self._files.discard(f)
        self._unsaved.pop(f, None)
        content = f._content
        content.handles -= 1
        if content.handles == 0:
            if content.spill is not None:
                content.spill.close()
                content.spill = None
            if content.path is not None and self._contents.get(content.path) is content:
                del self._contents[content.path]

    def _forget(self, path: str) -> None:
        """The name ``path`` is gone: its open handles keep their content, nameless."""
        self._inos.pop(path, None)
        content = self._contents.pop(path, None)
        if content is not None:
            for f in self._handles(content):
                f._keep_readable()
            content.path = None
            if content.spill is not None:
                content.spill.retarget(None)  # its data is meant for nowhere now

    def _moved(self, src: str, dst: str) -> None:
        """Inode numbers and open files follow a rename, as they would on a disk."""

        def under_src(p: str) -> bool:
            return p == src or p.startswith(src + "/")

        def renamed(p: str) -> str:
            return dst + p[len(src):]

        moved_inos = {renamed(p): ino for p, ino in self._inos.items() if under_src(p)}
        self._inos = {p: ino for p, ino in self._inos.items() if not under_src(p)} | moved_inos
        moved = [content for p, content in self._contents.items() if under_src(p)]
        for content in moved:
            assert content.path is not None
            del self._contents[content.path]
            content.path = renamed(content.path)
        self._contents.update((content.path, content) for content in moved if content.path)
        for content in moved:
            if content.spill is not None and content.path is not None:
                content.spill.retarget(self.url(content.path))

    # -- the store's view of one path ----------------------------------------------------

    def _pending(self, path: str) -> _Content | None:
        """The content of ``path`` if it was created here and is not stored yet."""
        content = self._contents.get(path)
        return content if content is not None and content.pending else None

    def _store_pending(self, under: str) -> None:
        """Store the names created here under ``under`` (or it) empty, for an operation
        that needs them in the store (a rename); their data follows at close or sync."""
        for path, content in list(self._contents.items()):
            if content.pending and (path == under or path.startswith(under + "/")):
                with _posix_errors(path):
                    self.fs.pipe_file(self._full(path), b"")
                content.pending = False
                self._cache.note(path, Entry(FileKind.REGULAR, 0, content.mtime_ns))

    def _describe(self, info: dict[str, Any]) -> Entry:
        info = self._layout.describe(info)
        kind = _kind(info)
        size = int(info.get("size") or 0) if kind is FileKind.REGULAR else 0
        target = info.get("destination")
        if kind is FileKind.SYMLINK and target is not None:
            size = len(os.fsencode(str(target)))
        return Entry(kind, size, _time_ns(info), None if target is None else str(target))

    def _listed(self, path: str, *, whole: bool) -> tuple[dict[str, Entry], bool]:
        """The entries of directory ``path`` by name, as the store lists them now, and
        whether that is all of them (always with ``whole``); kept in the cache."""
        full = self._full(path)
        try:
            with _posix_errors(path):
                listed, complete = self._layout.list_dir(self.fs, full, whole=whole)
        except FileNotFoundError:
            if path:
                raise
            listed, complete = [], True  # an empty root of an object store
        itself = self.fs._strip_protocol(full).rstrip("/")
        entries: dict[str, Entry] = {}
        for info in listed:
            fullname = str(info["name"]).rstrip("/")
            name = self._layout.entry_name(fullname)
            # Some stores list the directory itself, or a marker object for it.
            if fullname == itself or name is None:
                continue
            entries[name] = self._describe(info)
        if self._layout.listings_describe_entries:
            self._cache.listed(path, entries, complete=complete)
        return entries, complete

    def _ask(self, path: str) -> Entry | None:
        """What the store says ``path`` is now (None: nothing), kept in the cache."""
        entry: Entry | None
        if path == "" and self._layout.prefix_directories:
            # The mount's root: checked when mounted, and a prefix has no time of its own.
            entry = Entry(FileKind.DIRECTORY, 0, 0)
        elif path and self._layout.lookup_by_listing:
            parent, _, name = path.rpartition("/")
            entries, complete = self._listed(parent, whole=False)
            if name in entries or complete:
                return entries.get(name)
            entry = self._ask_store(path)  # not in the first page of a big directory
        else:
            entry = self._ask_store(path)
        self._cache.note(path, entry)
        return entry

    def _ask_store(self, path: str) -> Entry | None:
        try:
            with _posix_errors(path):
                entry = self._describe(self.fs.info(self._full(path)))
        except FileNotFoundError:
            if path:
                return None
            entry = Entry(FileKind.DIRECTORY, 0, 0)
        if path == "":  # the mount's root: a web server may not say it is a folder
            entry = dataclasses.replace(entry, kind=FileKind.DIRECTORY, size=0)
        return entry

    def _stored(self, path: str) -> Entry:
        """``path`` in the store, as this mount knows it (asking only what it does not)."""
        entry = self._known_stored(path)
        if entry is None:
            self._missing(path)
        assert isinstance(entry, Entry)
        return entry

    def _known_stored(self, path: str) -> Entry | None:
        known = self._cache.lookup(path)
        entry = self._ask(path) if known is UNKNOWN else known
        assert entry is None or isinstance(entry, Entry)
        return entry

    def _entry(self, path: str) -> Entry:
        """``path`` as this world sees it: its own names not stored yet included."""
        entry = self._seen(path)
        if entry is None:
            self._missing(path)
        assert isinstance(entry, Entry)
        return entry

    def _seen(self, path: str) -> Entry | None:
        """``path`` as this world sees it, None if nothing is there (whatever its parents)."""
        pending = self._pending(path)
        if pending is not None:
            size = pending.spill.size if pending.spill is not None else 0
            return Entry(FileKind.REGULAR, size, 0)
        entry = self._known_stored(path)
        if entry is None:
            return None
        local = self._contents.get(path)
        if local is not None and local.dirty and local.empty and local.spill is None:
            # Truncated by an open here: empty for this world until it reaches the store.
            return dataclasses.replace(entry, size=0)
        return entry

    def _missing(self, path: str) -> NoReturn:
        """Raise for ``path``, which is not there. POSIX says ENOTDIR when a parent is a
        file; the store just says "not found". The deepest ancestor that exists says which:
        the parent, usually (one lookup, none if known); else a binary search, since
        ancestors exist from the root down, finds it in a few lookups however deep the path
        (one per missing level would be a request each and a Python frame each)."""
        cuts = []  # ancestor i is path[:cuts[i]]; the root, always there, is not one
        at = path.find("/")
        while at >= 0:
            cuts.append(at)
            at = path.find("/", at + 1)
        deepest: Entry | None = None
        low, high = 0, len(cuts)  # ancestors up to low exist; past high, none does
        middle = high  # the parent first
        while low < high:
            try:
                found = self._seen(path[: cuts[middle - 1]])
            except NotADirectoryError:  # a store that refuses to list a file
                found = None
            if found is None:
                high = middle - 1
            else:
                low, deepest = middle, found
            middle = (low + high + 1) // 2
        if deepest is not None and deepest.kind is not FileKind.DIRECTORY:
            raise posix_error(errno.ENOTDIR, path)
        raise posix_error(errno.ENOENT, path)

    def _lookup(self, path: str) -> Entry | None:
        try:
            return self._entry(path)
        except FileNotFoundError:
            return None

    def _require_dir(self, path: str) -> None:
        # The mount's root is a directory: checked when mounted, never asked again.
        if path and self._entry(path).kind is not FileKind.DIRECTORY:
            raise posix_error(errno.ENOTDIR, path)

    def _make_stat(self, path: str, entry: Entry) -> Stat:
        t = entry.mtime_ns or self._mounted_ns
        return Stat(entry.kind, entry.size, self._ino(path), 1, self._dev, t, t, t)

    # -- reading -------------------------------------------------------------------------

    def lstat(self, path: str) -> Stat:
        return self._make_stat(path, self._entry(path))

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> FsspecFile:
        entry = self._lookup(path)  # what path resolution just learned, from the cache
        opening = open_rule(path, None if entry is None else entry.kind, create=create,
                            exclusive=exclusive, truncate=truncate, writable=writable)
        with _posix_errors(path):
            if opening is Opening.CREATE:
                self._require_dir(_parent(path))
            # O_CREAT and O_TRUNC reach the store with the data, at the first sync or
            # close: a file never closed leaves no empty object, nor an emptied one.
            content = self._share(path, emptied=opening is Opening.CREATE or truncate)
            if opening is Opening.CREATE:
                content.pending = True
            if entry is None or opening is Opening.CREATE or truncate:
                entry = Entry(FileKind.REGULAR, 0, 0 if entry is None else entry.mtime_ns)
            f = FsspecFile(self, content, writable=writable, last=self._make_stat(path, entry))
        self._files.add(f)
        return f

    def listdir(self, path: str) -> list[DirEntry]:
        """Entries sorted by name (code point order)."""
        if self._entry(path).kind is not FileKind.DIRECTORY:
            raise posix_error(errno.ENOTDIR, path)
        listing = self._cache.listing(path)
        found = listing if listing is not None else self._listed(path, whole=True)[0]
        entries = {name: DirEntry(name, self._ino(f"{path}/{name}" if path else name),
                                  entry.kind) for name, entry in found.items()}
        for child, content in self._contents.items():  # created here, not stored yet
            if content.pending and _parent(child) == path:
                name = child.rpartition("/")[2]
                entries[name] = DirEntry(name, self._ino(child), FileKind.REGULAR)
        return [entries[name] for name in sorted(entries)]

    def readlink(self, path: str) -> str:
        entry = self._entry(path)
        if entry.kind is not FileKind.SYMLINK:
            raise posix_error(errno.EINVAL, path)
        if entry.target is None:
            raise posix_error(errno.ENOTSUP, path)
        return entry.target  # fsspec's local filesystem tells the target

    # -- mutating ------------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        if path == "" or self._lookup(path) is not None:
            raise posix_error(errno.EEXIST, path)
        self._require_dir(_parent(path))
        with _posix_errors(path):
            self._layout.make_dir(self.fs, self._full(path))
        made = 0 if self._layout.prefix_directories else time.time_ns()
        self._cache.note(path, Entry(FileKind.DIRECTORY, 0, made))
        self._cache.listed(path, {}, complete=True)  # it was absent: nothing is below it

    def rmdir(self, path: str) -> None:
        if path == "":
            raise posix_error(errno.EBUSY, path)
        if self.listdir(path):
            raise posix_error(errno.ENOTEMPTY, path)
        with _posix_errors(path):
            self._layout.remove_dir(self.fs, self._full(path))
            self._gone(path, is_dir=True)
            self._keep_parent(path)
        self._forget(path)

    def unlink(self, path: str) -> None:
        if path == "" or self._entry(path).kind is FileKind.DIRECTORY:
            raise posix_error(errno.EISDIR, path)
        stored = self._pending(path) is None
        self._forget(path)  # open handles keep their reader first
        if stored:
            with _posix_errors(path):
                self.fs.rm_file(self._full(path))
                self._gone(path, is_dir=False)
                self._keep_parent(path)

    def rename(self, src: str, dst: str) -> None:
        if src == "" or dst == "":
            raise posix_error(errno.EBUSY, src or dst)
        moving = self._entry(src)
        is_dir = moving.kind is FileKind.DIRECTORY
        self._require_dir(_parent(dst))
        if src == dst:
            return
        if dst.startswith(src + "/"):
            raise posix_error(errno.EINVAL, dst)
        target = self._lookup(dst)
        self._store_pending(src)
        with _posix_errors(dst):
            if target is not None:
                target_is_dir = target.kind is FileKind.DIRECTORY
                if is_dir and not target_is_dir:
                    raise posix_error(errno.ENOTDIR, dst)
                if target_is_dir and not is_dir:
                    raise posix_error(errno.EISDIR, dst)
                if target_is_dir:
                    if self.listdir(dst):
                        raise posix_error(errno.ENOTEMPTY, dst)
                    # fsspec would move src *into* it
                    self._layout.remove_dir(self.fs, self._full(dst))
                self._forget(dst)
            if not is_dir:
                moving = self._stored(src)  # stored just now if it was pending
            try:
                self._move(self._full(src), self._full(dst), is_dir, moving.size)
            finally:  # half done or not, what was under both names must be asked again
                self._gone(dst, is_dir=is_dir)
                self._gone(src, is_dir=is_dir)
            self._cache.note(dst, moving)
            self._keep_parent(src)
        self._moved(src, dst)

    def _gone(self, path: str, *, is_dir: bool) -> None:
        """This world removed ``path`` from the store (a directory, everything under it)."""
        if is_dir:
            self._cache.forget_below(path)
        self._cache.note(path, None)
        self._ahead.forget(path)

    # -- reading stored content ----------------------------------------------------------

    def _open_stored(self, path: str, size: int) -> Any:
        """A reader of ``path`` as stored (``size`` bytes, as far as this mount knows), and
        what to read ahead of it, if its folder is being read in order."""
        data = self._ahead.take(path)
        reader = (io.BytesIO(data) if data is not None
                  else self._layout.open_read(self.fs, self._full(path), size))
        if size <= SMALL:
            self._ahead.read(path, self._small_files(_parent(path)))
        return reader

    def _small_files(self, folder: str) -> list[str]:
        """The small regular files of ``folder`` in listing order, if it was listed."""
        listing = self._cache.listing(folder)
        if listing is None:
            return []
        known, count, paths = self._in_order
        if known != folder or count != len(listing):
            prefix = f"{folder}/" if folder else ""
            paths = [prefix + name for name, entry in sorted(listing.items())
                     if entry.kind is FileKind.REGULAR and entry.size <= SMALL]
            self._in_order = (folder, len(listing), paths)
        return paths

    def _keep_parent(self, path: str) -> None:
        """``path`` was removed: its directory stays, even where directories are prefixes."""
        parent = _parent(path)
        if not parent:
            return
        listing = self._cache.listing(parent)
        if listing:
            return  # other entries keep it
        self._layout.keep_dir(self.fs, self._full(parent))

    def _move(self, src: str, dst: str, is_dir: bool, size: int) -> None:
        if is_dir:
            self._layout.move_dir(self.fs, src, dst)
        else:
            self._layout.move_file(self.fs, src, dst, size)

    def symlink(self, target: str, path: str) -> None:
        raise posix_error(errno.ENOTSUP, path)

    def link(self, src: str, dst: str) -> None:
        raise posix_error(errno.ENOTSUP, dst)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._entry(path)
        if atime_ns is None and mtime_ns is None:
            return  # setting nothing succeeds, as on Linux
        raise posix_error(errno.ENOTSUP, path)  # fsspec has no way to set a time
