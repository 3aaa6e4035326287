"""A host folder as a :class:`~virtwasi.storage.base.Storage`, confined to its root.

The storage keeps a directory fd on the root and reaches every path's parent from it
without following anything: in one ``openat2`` call with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS`` where Linux has it (the kernel walks the components, as it does for
wasmtime), else one component at a time, opening each with ``O_NOFOLLOW | O_DIRECTORY``.
It acts on the last component through ``dir_fd=`` without following it. A symlink the host
plants anywhere, even between two of our checks, is met as ``ELOOP``/``ENOTDIR`` (as a
parent) or acted on as the link itself (as the last component): nothing can lead outside
the root. Nothing is cached: every call walks the tree as it is now. The root itself is
trusted configuration.

Open files are plain host fds used positionally (``preadv``/``pwrite``), so reads and
writes go straight between guest memory and the page cache without an extra copy.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as st
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from .base import DirEntry, FileKind, Stat, is_clean, posix_error
from .opening import open_rule

# O_PATH opens need only search permission, like the kernel's own lookup of a parent.
_WALK = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the tree must not hang; O_NOCTTY: nor adopt a tty.
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY

_KINDS = {
    st.S_IFREG: FileKind.REGULAR,
    st.S_IFDIR: FileKind.DIRECTORY,
    st.S_IFLNK: FileKind.SYMLINK,
    st.S_IFCHR: FileKind.CHARACTER_DEVICE,
    st.S_IFBLK: FileKind.BLOCK_DEVICE,
    st.S_IFSOCK: FileKind.SOCKET,
    st.S_IFIFO: FileKind.FIFO,
}


def _kind(mode: int) -> FileKind:
    return _KINDS.get(st.S_IFMT(mode), FileKind.UNKNOWN)


def to_stat(s: os.stat_result) -> Stat:
    return Stat(
        kind=_kind(s.st_mode),
        size=s.st_size,
        ino=s.st_ino,
        nlink=s.st_nlink,
        dev=s.st_dev,
        atime_ns=s.st_atime_ns,
        mtime_ns=s.st_mtime_ns,
        ctime_ns=s.st_ctime_ns,
    )


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every Linux architecture
# RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH
_HOW = _OpenHow(_WALK, 0, 0x02 | 0x04 | 0x08)
_CHUNK = 4000  # bytes of path per openat2 call: the kernel takes fewer than PATH_MAX


def _syscall() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_long
    call.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                     ctypes.c_size_t]
    return call


_openat2 = _syscall()


def _open_beneath(fd: int, path: str) -> int | None:
    """The directory ``path`` below the directory ``fd``, opened with ``openat2`` so that
    the kernel walks it refusing every symlink and every way out; None when this kernel
    (or a seccomp filter) has no openat2, or asks to try again."""
    global _openat2
    if _openat2 is None:
        return None
    raw = os.fsencode(path)
    opened = fd
    try:
        while raw:
            piece = raw
            if len(piece) > _CHUNK:
                cut = raw.rfind(b"/", 0, _CHUNK)
                piece = raw[:cut] if cut > 0 else raw  # no '/': the kernel says too long
            got = _openat2(_SYS_OPENAT2, opened, piece, ctypes.byref(_HOW), ctypes.sizeof(_HOW))
            if got < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOSYS, errno.EPERM):
                    _openat2 = None  # not here: walk one component at a time from now on
                    return None
                if code == errno.EAGAIN:  # a rename raced the walk: walk it by hand
                    return None
                raise posix_error(code, path)
            if opened != fd:
                os.close(opened)
            opened = got
            raw = raw[len(piece) + 1 :]
    except BaseException:
        if opened != fd:
            os.close(opened)
        raise
    return opened


def entry_kind(entry: os.DirEntry[str]) -> FileKind:
    try:
        if entry.is_symlink():
            return FileKind.SYMLINK
        if entry.is_dir(follow_symlinks=False):
            return FileKind.DIRECTORY
        if entry.is_file(follow_symlinks=False):
            return FileKind.REGULAR
        return _kind(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:  # removed since the directory was read
        return FileKind.UNKNOWN


def _bytes_view(data: memoryview | bytes) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


@contextmanager
def parent_of(root: int, path: str) -> Iterator[tuple[int, str]]:
    """The fd of ``path``'s parent, reached from the directory fd ``root`` without
    following anything (see the module doc), and the last component. ``path`` is a clean
    relative path; the fd is valid inside the ``with`` only."""
    # The caller promises clean paths; a ".." slipping through would be the one way out.
    if not is_clean(path):
        raise posix_error(errno.EINVAL, path)
    head, _, name = path.rpartition("/")
    fd = root
    try:
        if head:
            beneath = _open_beneath(root, head)
            if beneath is not None:
                fd = beneath
            else:
                for part in head.split("/"):
                    child = os.open(part, _WALK, dir_fd=fd)
                    if fd != root:
                        os.close(fd)
                    fd = child
        yield fd, name
    finally:
        if fd != root:
            os.close(fd)


class HostDirFile:
    """An open regular file of a :class:`HostDirStorage`: a host fd used positionally."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path
        self._release = weakref.finalize(self, os.close, fd)

    def _live_fd(self) -> int:
        if self._fd < 0:
            raise posix_error(errno.EBADF, self._path)
        return self._fd

    def readinto(self, buf: memoryview, offset: int) -> int:
        fd = self._live_fd()
        got = os.preadv(fd, [buf], offset)
        if got == 0 or got == buf.nbytes:
            return got
        # A short read before the end (a signal, a huge request): keep filling.
        view = _bytes_view(buf)
        while 0 < got < view.nbytes:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                break
            got += n
        return got

    def write(self, data: memoryview | bytes, offset: int) -> int:
        fd = self._live_fd()
        view = _bytes_view(data)
        done = 0
        while done < view.nbytes:
            n = os.pwrite(fd, view[done:] if done else view, offset + done)
            if n == 0:
                raise posix_error(errno.EIO, self._path)
            done += n
        return done

    def stat(self) -> Stat:
        return to_stat(os.fstat(self._live_fd()))

    def truncate(self, size: int) -> None:
        os.ftruncate(self._live_fd(), size)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        fd = self._live_fd()
        if atime_ns is not None or mtime_ns is not None:
            os.utime(fd, ns=_times(os.fstat(fd), atime_ns, mtime_ns))

    def sync(self) -> None:
        os.fsync(self._live_fd())

    def close(self) -> None:
        """Release the fd. Bytes written are already in the host filesystem, visible to every
        reader, so close does not fsync: that is :meth:`sync`'s job, asked for explicitly."""
        if self._fd < 0:
            return
        self._fd = -1
        self._release()


class HostDirStorage:
    """The folder ``root`` on the host, served without ever leaving it (read-only through
    :class:`~.readonly.ReadOnlyStorage`).

    Call :meth:`close` (or use ``with``) to release the root's fd; files opened from the
    storage stay usable after that.
    """

    supports_symlinks = True
    supports_hardlinks = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._release = weakref.finalize(self, os.close, self._root_fd)

    def close(self) -> None:
        """Release the root's fd (closing twice does nothing more)."""
        # -1 makes every later *at call fail with EBADF rather than reach a reused fd number.
        self._root_fd = -1
        self._release()

    def __enter__(self) -> HostDirStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- walking -------------------------------------------------------------------------

    @contextmanager
    def _at(self, path: str) -> Iterator[tuple[int, str]]:
        """The fd of ``path``'s parent (reached without following anything) and its last
        component. The fd is valid inside the ``with`` only."""
        if self._root_fd < 0:
            raise posix_error(errno.EBADF, path)
        with parent_of(self._root_fd, path) as found:
            yield found

    # -- reading -------------------------------------------------------------------------

    def lstat(self, path: str) -> Stat:
        if path == "":
            return to_stat(os.fstat(self._root_fd))
        with self._at(path) as (parent, name):
            return to_stat(os.stat(name, dir_fd=parent, follow_symlinks=False))

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> HostDirFile:
        if path == "":  # the root: a directory, whatever the flags ask
            open_rule(path, FileKind.DIRECTORY, create=create, exclusive=exclusive)
        flags = _OPEN | (os.O_RDWR if writable else os.O_RDONLY)
        if create:
            flags |= os.O_CREAT | (os.O_EXCL if exclusive else 0)
        if truncate:
            flags |= os.O_TRUNC
        with self._at(path) as (parent, name):
            fd = os.open(name, flags, 0o666, dir_fd=parent)
        try:
            # The kernel decided for the name as it opened it (O_CREAT|O_EXCL, O_NOFOLLOW),
            # with no window between a check and the open, and its answers are those of
            # the shared rules; what it opened is held to them too (no directory, FIFO,
            # socket or device).
            open_rule(path, _kind(os.fstat(fd).st_mode))
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return HostDirFile(fd, path)

    def listdir(self, path: str) -> list[DirEntry]:
        """Entries sorted by name (code point order)."""
        if path == "":
            fd = os.open(".", _LIST, dir_fd=self._root_fd)
        else:
            with self._at(path) as (parent, name):
                fd = os.open(name, _LIST, dir_fd=parent)
        try:
            # scandir(fd) reads through its own dup, so fd is still ours to close.
            with os.scandir(fd) as entries:
                out = [DirEntry(e.name, e.inode(), entry_kind(e)) for e in entries]
        finally:
            os.close(fd)
        out.sort(key=lambda e: e.name)
        return out

    def readlink(self, path: str) -> str:
        if path == "":
            raise posix_error(errno.EINVAL, path)
        with self._at(path) as (parent, name):
            return os.readlink(name, dir_fd=parent)

    # -- mutating ------------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        if path == "":
            raise posix_error(errno.EEXIST, path)
        with self._at(path) as (parent, name):
            os.mkdir(name, 0o777, dir_fd=parent)

    def rmdir(self, path: str) -> None:
        if path == "":
            raise posix_error(errno.EBUSY, path)
        with self._at(path) as (parent, name):
            os.rmdir(name, dir_fd=parent)

    def unlink(self, path: str) -> None:
        if path == "":
            raise posix_error(errno.EISDIR, path)
        with self._at(path) as (parent, name):
            os.unlink(name, dir_fd=parent)

    def rename(self, src: str, dst: str) -> None:
        if src == "" or dst == "":
            raise posix_error(errno.EBUSY, src or dst)
        with self._at(src) as (src_parent, src_name), self._at(dst) as (dst_parent, dst_name):
            os.rename(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)

    def symlink(self, target: str, path: str) -> None:
        """Store ``target`` as it is: resolving it (inside the mount) is the caller's job."""
        if path == "":
            raise posix_error(errno.EEXIST, path)
        with self._at(path) as (parent, name):
            os.symlink(target, name, dir_fd=parent)

    def link(self, src: str, dst: str) -> None:
        if src == "":
            raise posix_error(errno.EPERM, src)
        if dst == "":
            raise posix_error(errno.EEXIST, dst)
        with self._at(src) as (src_parent, src_name), self._at(dst) as (dst_parent, dst_name):
            os.link(
                src_name,
                dst_name,
                src_dir_fd=src_parent,
                dst_dir_fd=dst_parent,
                follow_symlinks=False,
            )

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        if path == "":
            now = os.fstat(self._root_fd)
            if atime_ns is not None or mtime_ns is not None:
                os.utime(self._root_fd, ns=_times(now, atime_ns, mtime_ns))
            return
        with self._at(path) as (parent, name):
            now = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if atime_ns is None and mtime_ns is None:
                return
            os.utime(
                name,
                ns=_times(now, atime_ns, mtime_ns),
                dir_fd=parent,
                follow_symlinks=False,
            )


def _times(now: os.stat_result, atime_ns: int | None, mtime_ns: int | None) -> tuple[int, int]:
    """os.utime has no UTIME_OMIT: a time left alone is written back as it was."""
    return (
        now.st_atime_ns if atime_ns is None else atime_ns,
        now.st_mtime_ns if mtime_ns is None else mtime_ns,
    )
