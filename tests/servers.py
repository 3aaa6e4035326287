"""Network servers on 127.0.0.1 for tests of the network mounts, as pytest fixtures.

Every URL fixture gives a URL that ``virtwasi.storage.mounts.open_mount(url)`` (and ``virtwasi run
--mount GUEST=URL``) opens as a tree of its own:

* ``s3_endpoint`` (session): one S3 endpoint (moto) for the whole run. It also sets the
  ``AWS_*`` variables that point every s3fs client made later, in this process or a
  ``virtwasi`` child, at it; returns the endpoint URL (``http://127.0.0.1:PORT``);
* ``s3_url``: a fresh empty bucket per test, ``s3://virtwasi-N``, writable;
* ``ftp_url``: a fresh empty folder per test on one FTP server (pyftpdlib) for the run,
  ``ftp://USER:PASSWORD@127.0.0.1:PORT/test-N``, writable;
* ``http_url``: a factory, ``http_url(folder)`` serves a host folder read-only as
  ``http://127.0.0.1:PORT/`` until the test ends.

Servers stop when their scope ends; nothing but 127.0.0.1 is contacted. ``s3_url`` and
``ftp_url`` also point ``VIRTWASI_CACHE`` at the test's own folder, so that data a test
leaves unsaved is kept there (``unsaved_dir``), never in the user's cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from virtwasi.storage.loopback import (
    ftp_server,
    http_server,
    s3_environment,
    s3_filesystem,
    s3_server,
)

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint, pytest.MonkeyPatch.context() as env:
        for name, value in s3_environment(endpoint).items():
            env.setenv(name, value)
        yield endpoint


@pytest.fixture
def unsaved_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a run keeps what it could not store, for this test alone."""
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "unsaved"


@pytest.fixture
def s3_url(s3_endpoint: str, unsaved_dir: Path) -> str:
    bucket = f"virtwasi-{next(_numbers)}"
    s3_filesystem(s3_endpoint).mkdir(bucket)
    return f"s3://{bucket}"


@pytest.fixture
def s3_fresh(s3_endpoint: str) -> Callable[[], Any]:
    """A new s3fs client with empty caches each call: to read back what a guest wrote."""
    return lambda: s3_filesystem(s3_endpoint, fresh=True)


@pytest.fixture(scope="session")
def ftp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The session's FTP server: its base URL and the host folder it serves."""
    root = tmp_path_factory.mktemp("ftp")
    with ftp_server(root) as url:
        yield url, root


@pytest.fixture
def ftp_url(ftp_root: tuple[str, Path], unsaved_dir: Path) -> str:
    base, root = ftp_root
    name = f"test-{next(_numbers)}"
    (root / name).mkdir()
    return f"{base}/{name}"


@pytest.fixture
def ftp_folder(ftp_root: tuple[str, Path], ftp_url: str) -> Path:
    """The host folder behind ``ftp_url``: to check what the server holds."""
    return ftp_root[1] / ftp_url.rpartition("/")[2]


@pytest.fixture
def http_url() -> Iterator[Callable[[Path], str]]:
    with ExitStack() as servers:
        yield lambda folder: servers.enter_context(http_server(folder))
