"""Turning what a user names (a URL, a folder, an fsspec filesystem) into a mounted storage.

* a plain path or ``file://PATH`` is a host folder, served by
  :class:`~virtwasi.storage.HostDirStorage` (never by fsspec's local filesystem, which
  would follow symlinks planted on the host out of the folder);
* ``mem://`` is a fresh, private in-memory tree (the embedded default), holding at most
  4 GiB (:data:`~virtwasi.storage.memfs.DEFAULT_CAPACITY`; ``mem://?capacity=512M``, or
  ``none``, sets another bound);
* anything else is an fsspec URL, chained ones included (``zip::file://a.zip``,
  ``simplecache::s3://bucket/prefix``), served by :class:`~virtwasi.storage.FsspecStorage`.
  fsspec's own ``memory://`` is one store for the whole process, as fsspec defines it.
  ``zip::`` and ``tar::`` URLs are opened by :mod:`virtwasi.storage.archives`, which reads
  members in place.
* an :class:`Overlay` serves one source copy-on-write over another (see
  :mod:`virtwasi.storage.overlay`).

A mount is read-only when asked (``read_only=True``, ``--ro``) and whenever its source
cannot be written (a zip or tar archive, a web server, a ``simplecache::`` chain...): then,
and only then, its storage is wrapped in :class:`~virtwasi.storage.ReadOnlyStorage`, which
answers ``EROFS`` to every change.

Every problem is a :class:`MountError` whose message names the mount and what is wrong.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from .base import FileKind, Storage
from .hostdir import HostDirStorage
from .memfs import DEFAULT_CAPACITY, MemoryStorage
from .overlay import OverlayStorage
from .readonly import ReadOnlyStorage, is_read_only

if TYPE_CHECKING:
    import fsspec


@dataclass(frozen=True)
class Remote:
    """An fsspec URL with storage options, as ``fsspec.open`` takes them: for the outermost
    filesystem, or under a protocol's name for any in a chain (``{"s3": {...}}``), e.g.
    ``Remote("s3://bucket/prefix", {"endpoint_url": "http://127.0.0.1:9000"})``."""

    url: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overlay:
    """``lower`` served copy-on-write: it is opened read-only and every change goes to
    ``upper`` (a fresh in-memory tree by default), as :class:`OverlayStorage` describes."""

    lower: MountSource
    upper: MountSource = "mem://"


MountSource: TypeAlias = "Storage | fsspec.AbstractFileSystem | str | Path | Remote | Overlay"
"""What a mount may be given as: a storage, an fsspec filesystem (its root), a URL or path,
or a URL with storage options, or an overlay of two of those."""


class MountError(ValueError):
    """A mount that cannot be served; the message is one line for the user."""


def _served(storage: Storage, read_only: bool) -> Storage:
    """``storage`` as the mount serves it: through the read-only view if asked."""
    return ReadOnlyStorage(storage) if read_only and not is_read_only(storage) else storage


def _host_folder(path: str, read_only: bool) -> Storage:
    if not Path(path).is_dir():
        what = "not a folder" if Path(path).exists() else "no such host folder"
        raise MountError(f"{what}: {path}")
    return _served(HostDirStorage(path), read_only)


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _mem_capacity(url: str) -> int | None:
    """The capacity of ``mem://`` (:data:`DEFAULT_CAPACITY`) or of ``mem://?capacity=N``
    (bytes, or with a K, M, G or T suffix, powers of 1024; ``none``: unbounded)."""
    _, _, query = url.partition("?")
    capacity: int | None = DEFAULT_CAPACITY
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key != "capacity":
            raise MountError(f"{url}: unknown option {key!r} (mem:// takes capacity=)")
        text = value.strip().lower().removesuffix("ib").removesuffix("b")
        if text == "none":
            capacity = None
            continue
        unit = text[-1:] if text[-1:] in _UNITS else ""
        number = text[: len(text) - len(unit)]
        if not number.isdigit():
            raise MountError(f"{url}: capacity must be a number of bytes, as 512M or 4G")
        capacity = int(number) * _UNITS[unit]
    return capacity


def _from_url(url: str, read_only: bool, options: Mapping[str, Any] | None = None) -> Storage:
    if url in ("mem://", "mem:") or url.startswith(("mem://?", "mem:?")):
        return _served(MemoryStorage(capacity=_mem_capacity(url)), read_only)
    if "://" not in url and "::" not in url:
        return _host_folder(url, read_only)
    for scheme in ("file://", "local://"):  # fsspec's local:// is file://: confined alike
        if url.startswith(scheme) and "::" not in url:
            return _host_folder(url.removeprefix(scheme) or "/", read_only)
    # fsspec only when a URL needs it: the in-memory default and host folders never do.
    from .archives import open_archive
    from .fsspec_storage import release_filesystem
    from .network import open_url

    ttl: float | Literal["filesystem"] | None = "filesystem"
    try:
        archive = open_archive(url, dict(options or {}))
        if archive is not None:
            fs, root = archive
        else:
            fs, root, ttl = open_url(url, dict(options or {}))
    except (ValueError, ImportError) as exc:
        raise MountError(f"{url}: {exc}") from None
    except FileNotFoundError as exc:
        raise MountError(f"{url}: not found: {exc.filename or exc}") from None
    except Exception as exc:  # fsspec backends raise whatever their libraries raise
        raise MountError(f"{url}: cannot open: {type(exc).__name__}: {exc}") from None
    try:
        return _from_filesystem(fs, root, url, read_only, owned=True, cache_ttl=ttl)
    except BaseException:
        release_filesystem(fs)  # opened for this mount alone, which failed
        raise


def _from_filesystem(fs: fsspec.AbstractFileSystem, root: str, name: str,
                     read_only: bool, *, owned: bool = False,
                     cache_ttl: float | Literal["filesystem"] | None = "filesystem") -> Storage:
    """The storage serving ``root`` of ``fs``; ``owned``: ``fs`` was opened for it alone;
    ``cache_ttl`` as :class:`~.fsspec_storage.FsspecStorage` takes it (by default, the
    filesystem's own rule)."""
    from .fsspec_layout import kind, layout_for, read_only_store
    from .fsspec_storage import FsspecStorage

    exists = is_dir = True
    if root.strip("/"):
        try:
            # One request: exists() would hide a server that cannot be reached.
            info = fs.info(root)
        except FileNotFoundError:
            exists = is_dir = False
        except Exception as exc:
            raise MountError(f"{name}: cannot reach it: {type(exc).__name__}: {exc}") from None
        else:  # a directory as the storage will see it (a web page ending in "/" is one)
            is_dir = kind(layout_for(fs).describe(info)) is FileKind.DIRECTORY
    if not is_dir:
        raise MountError(f"{name}: " + ("not a directory" if exists else "no such directory"))
    storage = FsspecStorage(fs, root, owns_fs=owned, cache_ttl=cache_ttl)
    return _served(storage, read_only or read_only_store(fs))


def _overlay(source: Overlay, read_only: bool) -> Storage:
    lower = open_mount(source.lower, read_only=True)  # never written, whatever it is
    try:
        upper = open_mount(source.upper)
        if is_read_only(upper):
            if opened_here(source.upper):
                upper.close()
            raise MountError(f"overlay: the upper layer {source.upper} is read-only")
    except BaseException:
        if opened_here(source.lower):
            lower.close()
        raise
    return _served(OverlayStorage(lower, upper), read_only)


def opened_here(source: MountSource) -> bool:
    """Whether :func:`open_mount` makes the storage serving ``source`` (so whoever opened
    it releases it), rather than serving a storage or filesystem the caller holds."""
    if isinstance(source, Overlay):
        return opened_here(source.lower) and opened_here(source.upper)
    return isinstance(source, str | Remote) or hasattr(source, "__fspath__")


def _is_filesystem(source: object) -> bool:
    """Whether ``source`` is an fsspec filesystem (none can be before fsspec is imported)."""
    fsspec = sys.modules.get("fsspec")
    return fsspec is not None and isinstance(source, fsspec.AbstractFileSystem)


def open_mount(source: MountSource, *, read_only: bool = False) -> Storage:
    """The storage serving ``source`` (read-only if asked)."""
    if isinstance(source, Path):
        return _host_folder(str(source), read_only)
    if isinstance(source, str):
        return _from_url(source, read_only)
    if isinstance(source, Remote):
        return _from_url(source.url, read_only, source.options)
    if isinstance(source, Overlay):
        return _overlay(source, read_only)
    if _is_filesystem(source):
        source = cast("fsspec.AbstractFileSystem", source)
        protocols = source.protocol if isinstance(source.protocol, tuple) else (
            source.protocol,)
        if {"file", "local"} & set(protocols):
            # It would serve the host from its working directory, through fsspec, which
            # follows host symlinks: a host folder is served by virtwasi's own confinement.
            raise MountError(f"{source!r} is the host's filesystem: mount a host folder by "
                             "its path (a pathlib.Path, or a file:// URL) instead")
        return _from_filesystem(source, "", repr(source), read_only)
    return _served(source, read_only)


def check_guest_path(guest: str) -> str:
    """A mount point as the guest will see it, normalised: absolute, one trailing ``/``
    dropped (``/data/`` is ``/data``); refuses what no program could name the same way
    twice: an empty, ``.`` or ``..`` component (``//``, ``/../x``) or a relative path."""
    if not guest or "\0" in guest:
        raise MountError(f"bad guest path {guest!r}")
    if not guest.startswith("/"):
        raise MountError(f"guest path {guest!r} is not absolute: did you mean "
                         f"{'/' + guest.removeprefix('./')!r}?")
    if guest == "/":
        return guest
    parts = guest[1:].split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if any(part in ("", ".", "..") for part in parts):
        raise MountError(f"bad guest path {guest!r}: write it without empty, '.' or '..' "
                         "components (as /data)")
    return "/" + "/".join(parts)


def guest_path(name: str) -> str:
    """A guest path that may be relative, as ``--dir`` and ``--ro`` take it: taken from
    ``/``, the guest's working directory (``.`` is ``/``, ``data`` and ``./data`` are
    ``/data``), then checked as :func:`check_guest_path` checks it."""
    if name in (".", "./"):
        return "/"
    if name and not name.startswith("/"):
        name = "/" + name.removeprefix("./")
    return check_guest_path(name)


def open_mounts(mounts: Mapping[str, MountSource],
                read_only: Iterable[str] = ()) -> dict[str, Storage]:
    """Every mount opened, in order; ``read_only`` names guest paths to serve read-only.
    Two mounts at one guest path (``/data`` and ``/data/``) are an error."""
    seen: dict[str, str] = {}
    for guest in mounts:
        same = seen.setdefault(check_guest_path(guest), guest)
        if same != guest:
            raise MountError(f"{same!r} and {guest!r} mount two sources at one guest path")
    frozen = {check_guest_path(guest) for guest in read_only}
    unknown = frozen - set(seen)
    if unknown:
        raise MountError(f"--ro {', '.join(sorted(unknown))}: nothing is mounted there")
    return {guest: open_mount(source, read_only=check_guest_path(guest) in frozen)
            for guest, source in mounts.items()}


def parse_mount(spec: str) -> tuple[str, str]:
    """``GUEST=URL`` as given to ``--mount``: GUEST normalised (see
    :func:`check_guest_path`). A GUEST that is not absolute is refused, with the two sides
    swapped as a hint when URL looks like the guest path (``./data=/data``)."""
    guest, sep, url = spec.partition("=")
    if not sep or not guest or not url:
        raise MountError(f"--mount wants GUEST=URL, got {spec!r}")
    if not guest.startswith("/"):
        if url.startswith("/") and "::" not in url:
            raise MountError(f"--mount {spec}: GUEST comes first, then the source "
                             f"(GUEST=URL): did you mean --mount {url}={guest}?")
        raise MountError(f"--mount {spec}: GUEST must be an absolute guest path: did you "
                         f"mean --mount /{guest.removeprefix('./')}={url}?")
    try:
        return check_guest_path(guest), url
    except MountError as exc:
        raise MountError(f"--mount {spec}: {exc}") from None


def parse_overlay(spec: str) -> tuple[str, str]:
    """``GUEST[=UPPER_URL]`` as given to ``--overlay`` (the upper defaults to ``mem://``);
    GUEST may be relative, as for ``--ro``."""
    guest, sep, upper = spec.partition("=")
    if not guest or (sep and not upper):
        raise MountError(f"--overlay wants GUEST[=UPPER_URL], got {spec!r}")
    try:
        return guest_path(guest), upper or "mem://"
    except MountError as exc:
        raise MountError(f"--overlay {spec}: {exc}") from None


def parse_dir(spec: str) -> tuple[str, str]:
    """``HOST[::GUEST]`` as given to ``--dir`` (wasmtime's syntax): the guest path and the
    host folder. GUEST defaults to HOST; a relative one is taken from ``/`` (``--dir data``
    serves ``data`` at ``/data``, ``--dir .`` at ``/``). ``a:b``, with one colon, naming no
    host folder, is refused with the hint ``a::b``."""
    host, sep, guest = spec.partition("::")
    if not host:
        raise MountError(f"--dir wants HOST[::GUEST], got {spec!r}")
    if "://" in host:
        raise MountError(f"--dir {spec}: --dir serves a host folder; serve a URL with "
                         "--mount GUEST=URL")
    if not sep and ":" in host and not Path(host).exists():
        left, _, right = host.partition(":")
        raise MountError(f"--dir {spec}: no such host folder; HOST and GUEST are "
                         f"separated by two colons: did you mean --dir {left}::{right}?")
    try:
        return guest_path(guest or host), host
    except MountError as exc:
        hint = "" if sep else f" (give one: --dir {host}::/{Path(host).name or 'data'})"
        raise MountError(f"--dir {spec}: {exc}{hint}") from None


def parse_mount_option(spec: str) -> tuple[str, str, Any]:
    """``PROTOCOL.KEY=VALUE`` as given to ``--mount-option``: a storage option for the
    fsspec filesystems of that protocol. VALUE is JSON when it parses as JSON (``3``,
    ``true``, ``{"a": 1}``), else the string as written."""
    name, sep, text = spec.partition("=")
    protocol, dot, key = name.partition(".")
    if not sep or not dot or not protocol or not key:
        raise MountError(f"--mount-option wants PROTOCOL.KEY=VALUE (as "
                         f"s3.endpoint_url=http://127.0.0.1:9000), got {spec!r}")
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return protocol, key, value


def anchored(url: str, folder: Path) -> str:
    """``url`` with its host path, if relative, taken from ``folder`` instead of the current
    one: a plain path, ``file://PATH``, or the last link of a chain (``zip::file://a.zip``)."""
    chain, sep, last = url.rpartition("::")
    path = last.removeprefix("file://")
    if "://" in path or url in ("mem:",) or not path or Path(path).is_absolute():
        return url
    return chain + sep + last.removesuffix(path) + str(folder / path)
