"""The backends the fixture suite runs on, each built holding a given initial tree.

A backend is built from a host folder (the case's initial tree): writable stores get the
tree copied in through the storage interface, archives are packed from it, the web server
serves it. Backends whose server a test fixture starts (``servers.py``: S3 on moto, FTP on
pyftpdlib, HTTP on the standard library's server, all on loopback) take their URL from
that fixture.
"""

from __future__ import annotations

import shutil
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

from virtwasi.storage.base import Storage
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.mounts import Overlay, open_mount
from virtwasi.storage.tree import copy_tree


def zip_folder(folder: Path, archive: Path, compression: int = zipfile.ZIP_STORED) -> Path:
    """``folder`` packed as a zip, directories included as entries of their own."""
    with zipfile.ZipFile(archive, "w", compression) as out:
        for path in sorted(folder.rglob("*")):
            out.write(path, path.relative_to(folder).as_posix())
    return archive


def tar_folder(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            out.add(path, path.relative_to(folder).as_posix(), recursive=False)
    return archive


def _filled(storage: Storage, tree: Path) -> Storage:
    with HostDirStorage(tree) as source:
        copy_tree(source, storage)
    return storage


Build = Callable[[Path, Path, pytest.FixtureRequest], Storage]
"""(initial tree, a scratch folder of the test's own, the test's request) -> the storage."""


@dataclass(frozen=True)
class Backend:
    name: str
    build: Build
    description: str


def _memory(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return _filled(MemoryStorage(), tree)


def _host(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    root = scratch / "host"
    shutil.copytree(tree, root, symlinks=True)
    return HostDirStorage(root)


def _zip(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return open_mount(f"zip::file://{zip_folder(tree, scratch / 'tree.zip')}")


def _tar(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return open_mount(f"tar::file://{tar_folder(tree, scratch / 'tree.tar')}")


def _fsspec_memory(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    # fsspec's memory store is one per process: each test takes a fresh folder of it.
    url = f"memory://suite-{uuid.uuid4().hex}"
    fsspec.filesystem("memory").mkdir(url)
    return _filled(open_mount(url), tree)


def _overlay(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return open_mount(Overlay(f"zip::file://{zip_folder(tree, scratch / 'tree.zip')}"))


def _s3(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return _filled(open_mount(request.getfixturevalue("s3_url")), tree)


def _ftp(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    return _filled(open_mount(request.getfixturevalue("ftp_url")), tree)


def _http(tree: Path, scratch: Path, request: pytest.FixtureRequest) -> Storage:
    serve: Callable[[Path], str] = request.getfixturevalue("http_url")
    return open_mount(serve(tree))


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("memory", _memory, "the in-memory default"),
    Backend("host", _host, "a host folder"),
    Backend("zip", _zip, "a zip archive (read-only)"),
    Backend("tar", _tar, "a tar archive (read-only)"),
    Backend("fsspec-memory", _fsspec_memory, "fsspec's memory:// through the generic path"),
    Backend("overlay", _overlay, "copy-on-write: a zip archive under the in-memory default"),
    Backend("s3", _s3, "an S3 bucket (moto on loopback)"),
    Backend("ftp", _ftp, "an FTP folder (pyftpdlib on loopback)"),
    Backend("http", _http, "a folder served over HTTP (read-only)"),
)}
