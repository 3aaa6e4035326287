"""An item's outputs: taken from its private trees once it succeeded, then published.

An output is a guest path and a URL. When the guest exits 0, the regular file at the guest
path is published to the URL; a folder's regular files, at any depth, go under the URL at
their paths in the folder (symlinks and empty folders are not published). Nothing is
published for an item that did not succeed, so a batch stopped at any moment leaves no
output of an unfinished item; and an item run again publishes the same objects again,
replacing its own outputs and nothing else.

Each object is stored whole or not at all: an upload goes through a spill
(:mod:`virtwasi.storage.spill`), recorded while it holds data the store has not, so that a
worker killed in the middle is reported by the next run as ``virtwasi run`` reports one;
an object store takes the whole object in one request, and a host file is written aside
and renamed into place. A store that answers ``EIO`` (unreachable) is asked again, up to
the batch's retries; what still cannot be stored is kept in the unsaved folder
(``virtwasi unsaved`` lists it and stores it later).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..storage.base import FileKind, Storage

T = TypeVar("T")


class Retries:
    """Storage steps of one item, each retried while it fails with ``EIO``, up to
    ``limit`` times in all (waiting 0.2 s, then twice as long each time, at most 5 s)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def run(self, step: Callable[[], T]) -> T:
        while True:
            try:
                return step()
            except OSError as exc:
                if exc.errno != errno.EIO or self.used >= self.limit:
                    raise
                time.sleep(min(0.2 * 2 ** self.used, 5.0))
                self.used += 1


def read_file(storage: Storage, path: str) -> bytes:
    f = storage.open(path)
    try:
        data = bytearray(f.stat().size)
        view = memoryview(data)
        done = 0
        while done < len(data) and (n := f.readinto(view[done:], done)):
            done += n
        return bytes(data[:done])
    finally:
        f.close()


def collect(storage: Storage, path: str, url: str, *, folder: bool) -> list[tuple[str, bytes]]:
    """The (URL, content) pairs the output at ``path`` of ``storage`` makes: the regular
    file there, or a ``folder``'s regular files (see the module doc). ``FileNotFoundError``
    when the guest left nothing there."""
    kind = storage.lstat(path).kind
    if not folder:
        if kind is FileKind.DIRECTORY:
            raise OSError(errno.EISDIR, "a folder (end the guest path with / to publish "
                          "its files)", path)
        if kind is not FileKind.REGULAR:
            raise OSError(errno.EINVAL, "not a regular file", path)
        return [(url, read_file(storage, path))]
    if kind is not FileKind.DIRECTORY:
        raise OSError(errno.ENOTDIR, "not a folder", path)
    found = []
    for entry in storage.listdir(path):
        inner = f"{path}/{entry.name}" if path else entry.name
        target = f"{url.rstrip('/')}/{entry.name}"
        if entry.kind is FileKind.REGULAR:
            found.append((target, read_file(storage, inner)))
        elif entry.kind is FileKind.DIRECTORY:
            found += collect(storage, inner, target, folder=True)
    return found


def publish(url: str, data: bytes, options: Mapping[str, Any]) -> None:
    """Store ``data`` whole at ``url`` (see the module doc); an OSError with the errno
    the store's failure maps to when it cannot."""
    from ..storage.fsspec_storage import storage_error
    from ..storage.network import open_url
    from ..storage.spill import Spill

    try:
        fs, path, _ = open_url(url, dict(options))
    except (ImportError, ValueError) as exc:
        raise OSError(errno.EINVAL, str(exc), url) from None
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    local = bool({"file", "local"} & set(protocols))
    spill = Spill(url=url)
    try:
        spill.write(data, 0)
        if local:
            folder, _, name = path.rpartition("/")
            fs.makedirs(folder or "/", exist_ok=True)
            aside = f"{folder}/.{name}.virtwasi-{os.getpid()}"
            spill.upload(fs, aside)
            fs.mv(aside, path)
        else:
            spill.upload(fs, path)
    except Exception as exc:  # fsspec backends raise whatever their libraries raise
        raise storage_error(exc, url) from exc
    finally:
        spill.close()


def keep_unpublished(pending: list[tuple[str, bytes]], reason: str) -> list[str]:
    """Keep what could not be published in the unsaved folder; where each went."""
    from ..storage.unsaved import keep, unsaved_run_folder

    run = unsaved_run_folder().name
    kept = []
    for url, data in pending:
        try:
            kept.append(str(keep(data, run, url, reason)))
        except OSError as exc:
            kept.append(f"nowhere ({exc.strerror})")
    return kept
