"""How an fsspec store keeps directories and metadata, read the same way for every store.

Stores differ in what a directory is, and :class:`~virtwasi.storage.FsspecStorage` picks
one :class:`Layout` per filesystem (:func:`layout_for`):

* :class:`Layout`: directories are real (local disk, memory, FTP, archives);
* :class:`ObjectStoreLayout` (S3): a directory is a key prefix. ``mkdir`` writes an empty
  *marker* object ``DIR/`` so that an empty directory exists and lists, ``rmdir`` deletes
  it, and a directory left empty by an unlink or a rename gets a marker so that it stays,
  as on a disk. Renaming a directory copies every object under it, then deletes them.
* :class:`WebLayout` (HTTP): a URL that ends with ``/`` (after redirects) is a directory,
  listed from the links of its page; names in links are percent-decoded.

Each layout also says how a name is best looked up (:attr:`Layout.lookup_by_listing`): on
S3 and FTP one listing of the parent answers for the name and all its siblings at the
cost of one request (FTP's own ``info()`` lists the parent anyway), where a ``HEAD`` of a
missing S3 key costs two (s3fs then lists the prefix to find a directory).
"""

from __future__ import annotations

import asyncio
import email.utils
import io
from concurrent.futures import Future
from datetime import UTC, datetime
from glob import has_magic
from typing import Any
from urllib.parse import unquote

from fsspec.archive import AbstractArchiveFileSystem

from .base import FileKind

# Filesystems that can only be read (an archive opened to write cannot be read back, so it
# is no use as a mount either). Caching layers are read
# only too: their local copies would go stale under writes.
_READ_ONLY_PROTOCOLS = frozenset(
    {"http", "https", "github", "git", "simplecache", "filecache", "blockcache", "cached"}
)
_OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a"})
_WEB_PROTOCOLS = frozenset({"http", "https"})

# Keys of info() that carry a modification time, by store: local/sftp, S3, Azure, GCS,
# memory (only "created", refreshed on every write), zip (a local-time tuple), FTP's MLSD
# ("modify", YYYYMMDDHHMMSS in UTC), HTTP (an RFC 9110 date).
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created", "date_time",
              "modify", "Last-Modified")


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, tuple | list) else (protocol,)


def read_only_store(fs: Any) -> bool:
    """Whether ``fs`` cannot be written (an archive, a web server, a caching layer), so
    that a mount of it is served through :class:`~.readonly.ReadOnlyStorage`."""
    if isinstance(fs, AbstractArchiveFileSystem):
        return True
    return bool(_READ_ONLY_PROTOCOLS.intersection(_protocols(fs)))


def _parse_time(key: str, value: Any) -> datetime | float | None:
    if isinstance(value, str):
        if key == "modify":
            whole, _, fraction = value.partition(".")
            parsed = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            return parsed.timestamp() + float(f"0.{fraction or 0}")
        if key == "Last-Modified":
            return email.utils.parsedate_to_datetime(value)
        return datetime.fromisoformat(value)
    if isinstance(value, tuple):
        return datetime(*value)  # zip: naive local time, as zipfile writes it
    if isinstance(value, datetime | int | float) and not isinstance(value, bool):
        return value
    return None


def time_ns(info: dict[str, Any]) -> int:
    """The first time info() reports, in ns since the epoch (0 when there is none)."""
    for key in _TIME_KEYS:
        try:
            value = _parse_time(key, info.get(key))
            if isinstance(value, datetime):
                if value.tzinfo is None and key != "date_time":
                    value = value.replace(tzinfo=UTC)
                return int(value.timestamp() * 1_000_000) * 1000
            if value is not None:
                return int(value * 1_000_000_000)
        except (TypeError, ValueError, OverflowError, OSError):
            continue  # not a time after all
    return 0


def kind(info: dict[str, Any]) -> FileKind:
    if info.get("islink"):  # fsspec's local filesystem: a host symlink it would follow
        return FileKind.SYMLINK
    return {"directory": FileKind.DIRECTORY, "file": FileKind.REGULAR}.get(
        info.get("type", ""), FileKind.UNKNOWN
    )


class Layout:
    """Real directories: the store's own mkdir, rmdir and mv do what POSIX asks."""

    lookup_by_listing = False
    """Whether a name is looked up by listing its parent (see the module doc)."""
    listings_describe_entries = True
    """Whether a listing says what each entry is and its size (a web page does not)."""
    prefix_directories = False
    """Whether a directory is a key prefix: no time of its own, and a mount's root needs
    no asking (it was checked when mounted)."""

    def list_dir(self, fs: Any, full: str, *, whole: bool) -> tuple[list[dict[str, Any]], bool]:
        """The entries of directory ``full`` as the store lists them (info() dicts), and
        whether that is all of them; with ``whole`` it always is. FileNotFoundError if the
        store has no such directory."""
        return fs.ls(full, detail=True), True

    def open_read(self, fs: Any, full: str, size: int) -> Any:
        """``full`` opened for reading, its ``size`` already known."""
        return fs.open(full, "rb")

    def fetch(self, fs: Any, full: str) -> Future[bytes] | None:
        """The whole content of ``full``, fetched concurrently with whatever the caller
        does next; None where the store cannot (see :mod:`.readahead`)."""
        return None

    def read_whole(self, fs: Any, full: str) -> bytes:
        """The whole content of ``full``, in as few requests as the store allows."""
        return bytes(fs.cat_file(full))

    def describe(self, info: dict[str, Any]) -> dict[str, Any]:
        """info() as the store answered it, with the type it means."""
        return info

    def entry_name(self, listed: str) -> str | None:
        """The name of a listed entry (its last path component), or None to leave it out."""
        name = listed.rstrip("/").rpartition("/")[2]
        return None if name in ("", ".", "..") else name

    def make_dir(self, fs: Any, full: str) -> None:
        fs.mkdir(full, create_parents=False)

    def remove_dir(self, fs: Any, full: str) -> None:
        fs.rmdir(full)

    def keep_dir(self, fs: Any, full: str) -> None:
        """An entry of directory ``full`` was removed: make sure the directory stays."""

    def move_file(self, fs: Any, src: str, dst: str, size: int) -> None:
        """Move the file ``src`` (of ``size`` bytes) to ``dst``, which is free."""
        if has_magic(src) or has_magic(dst):
            # fsspec's generic mv globs its arguments: "f[1]" would move "f1". Copy literally.
            fs.cp_file(src, dst)
            fs.rm_file(src)
        else:
            fs.mv(src, dst)

    def move_dir(self, fs: Any, src: str, dst: str) -> None:
        if not (has_magic(src) or has_magic(dst)):
            fs.mv(src, dst, recursive=True)
            return
        # fsspec's generic mv globs its arguments: "d[1]" would move "d1". Copy literally.
        found = {
            str(name).rstrip("/"): info
            for name, info in fs.find(src, withdirs=True, detail=True).items()
        }
        base = fs._strip_protocol(src).rstrip("/")
        below = sorted(name for name in found if name != base)
        fs.mkdir(dst, create_parents=False)
        for name in below:  # sorted: every directory before what it holds
            target = dst + name[len(base):]
            if found[name]["type"] == "directory":
                fs.mkdir(target, create_parents=False)
            else:
                fs.cp_file(name, target)
        for name in reversed(below):
            if found[name]["type"] != "directory":
                fs.rm_file(name)
            elif fs.exists(name):  # a directory implied by its files is gone with them
                fs.rmdir(name)
        if fs.exists(base):
            fs.rmdir(base)


class ListedLayout(Layout):
    """Real directories, where a name is best looked up in its parent's listing (FTP)."""

    lookup_by_listing = True


# A file this small (as far as the mount knows) is read whole at its first read.
_WHOLE = 8 << 20
# The largest object S3 copies in one request is 5 GiB.
_ONE_COPY = 5 << 30
# A page of ListObjectsV2 holds this many keys and prefixes (S3's own default).
_PAGE = 1000


class ObjectStoreLayout(Layout):
    """Directories as key prefixes, with empty ``DIR/`` marker objects (see the module doc).

    A prefix that holds objects is a directory whether or not it has a marker. A lookup
    lists the parent's first page only: a directory of more than a page of entries is not
    listed whole to find one name (see :class:`~.fsspec_storage.FsspecStorage`)."""

    lookup_by_listing = True
    prefix_directories = True

    def list_dir(self, fs: Any, full: str, *, whole: bool) -> tuple[list[dict[str, Any]], bool]:
        # One ListObjectsV2 per page, read by us: s3fs's ls() would list every page and
        # keep its own copy in its listings cache.
        bucket, key, _ = fs.split_path(full)
        prefix = f"{key}/" if key else ""
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/",
                                   "MaxKeys": _PAGE}
        found: list[dict[str, Any]] = []
        while True:
            page = fs.call_s3("list_objects_v2", **request)
            for common in page.get("CommonPrefixes", []):
                found.append({"name": f"{bucket}/{common['Prefix'].rstrip('/')}",
                              "type": "directory", "size": 0})
            for item in page.get("Contents", []):
                if item["Key"] == prefix:
                    continue  # the directory's own marker
                found.append({"name": f"{bucket}/{item['Key']}", "type": "file",
                              "size": item["Size"], "LastModified": item["LastModified"]})
            if not page.get("IsTruncated"):
                return found, True
            if not whole:
                return found, False
            request["ContinuationToken"] = page["NextContinuationToken"]

    def open_read(self, fs: Any, full: str, size: int) -> Any:
        if size <= _WHOLE:
            # One GET of the object as it is now, where s3fs's file would HEAD it first.
            return io.BytesIO(fs.cat_file(full, max_concurrency=1))  # else s3fs HEADs first
        return fs.open(full, "rb", size=size)

    def read_whole(self, fs: Any, full: str) -> bytes:
        return bytes(fs.cat_file(full, max_concurrency=1))  # one GET: else s3fs HEADs first

    def fetch(self, fs: Any, full: str) -> Future[bytes] | None:
        loop = getattr(fs, "loop", None)  # s3fs runs its requests on fsspec's own loop
        if loop is None or not loop.is_running():
            return None
        return asyncio.run_coroutine_threadsafe(fs._cat_file(full, max_concurrency=1), loop)

    def make_dir(self, fs: Any, full: str) -> None:
        fs.pipe_file(full + "/", b"")  # s3fs's mkdir makes nothing below a bucket

    def remove_dir(self, fs: Any, full: str) -> None:
        fs.rm_file(full + "/")  # the caller checked it is empty, so only a marker is left

    def keep_dir(self, fs: Any, full: str) -> None:
        if not fs.exists(full):
            fs.pipe_file(full + "/", b"")

    def move_file(self, fs: Any, src: str, dst: str, size: int) -> None:
        if size >= _ONE_COPY:
            fs.cp_file(src, dst)  # a copy in parts
        else:
            # One CopyObject: s3fs's cp_file would HEAD the source first, for its size.
            source_bucket, source_key, _ = fs.split_path(src)
            bucket, key, _ = fs.split_path(dst)
            fs.call_s3("copy_object", Bucket=bucket, Key=key,
                       CopySource={"Bucket": source_bucket, "Key": source_key})
            fs.invalidate_cache(dst)
        fs.rm_file(src)

    def move_dir(self, fs: Any, src: str, dst: str) -> None:
        keys = [str(key) for key in fs.find(src)]  # every object below, markers included
        fs.pipe_file(dst + "/", b"")  # the new name exists even if nothing is below it
        for key in keys:
            target = dst + key[len(src):]
            if key.endswith("/"):
                fs.pipe_file(target, b"")  # a marker: s3fs cannot copy a key ending in "/"
            else:
                fs.cp_file(key, target)
        for key in keys:
            fs.rm_file(key)


class WebLayout(Layout):
    """A web server's pages: a directory is a URL that ends with ``/``, and lists its links."""

    listings_describe_entries = False

    def describe(self, info: dict[str, Any]) -> dict[str, Any]:
        if str(info.get("url", "")).endswith("/"):
            return {**info, "type": "directory", "size": 0}
        return info

    def entry_name(self, listed: str) -> str | None:
        if "?" in listed or "#" in listed:
            return None  # a link to a sorted view of the page, not an entry
        name = super().entry_name(listed)
        return None if name is None else unquote(name)


def layout_for(fs: Any) -> Layout:
    protocols = set(_protocols(fs))
    if protocols & _OBJECT_STORE_PROTOCOLS:
        return ObjectStoreLayout()
    if protocols & _WEB_PROTOCOLS:
        return WebLayout()
    if "ftp" in protocols:
        return ListedLayout()
    return Layout()


_LOCAL_PROTOCOLS = frozenset({"memory", "file", "local"})


def remote_store(fs: Any) -> bool:
    """Whether asking ``fs`` about a name costs a request to a server (anything but the
    local disk, fsspec's memory and archives), so that a mount keeps what it learned."""
    if isinstance(fs, AbstractArchiveFileSystem):
        return False
    return not _LOCAL_PROTOCOLS.intersection(_protocols(fs))
