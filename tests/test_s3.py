"""S3 mounts (s3fs) against a moto server on 127.0.0.1, through real wasm modules.

What S3 cannot do as POSIX does is declared, and each declaration is checked here:
directories are key prefixes with marker objects, writes reach the bucket when a file is
closed, synced or torn down, rename copies then deletes, links are ENOTSUP, and an
unreachable endpoint is EIO without losing what was written.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from conftest import FIXTURES

from virtwasi.cli import main
from virtwasi.runtime import GuestTrap, Session, run
from virtwasi.storage.base import UploadError
from virtwasi.storage.fsspec_storage import FsspecStorage
from virtwasi.storage.loopback import s3_server
from virtwasi.storage.mounts import MountSource, Remote, open_mount
from virtwasi.terminal import progress
from virtwasi.wasi.abi import Errno

FSTOOL = str(FIXTURES / "fstool.wasm")
FILEOPS = str(FIXTURES / "fileops.wasm")
BLOCKTOOL = str(FIXTURES / "blocktool.wasm")
HOLDER = str(FIXTURES / "holder.wasm")
NOCLOSE = str(FIXTURES / "noclose.wasm")

Fresh = Callable[[], Any]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["run", *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def keys(fresh: Fresh, url: str) -> list[str]:
    """Every object in the bucket, as a new client sees it (s3fs caches listings)."""
    bucket = url.removeprefix("s3://")
    return sorted(key.removeprefix(bucket + "/") for key in fresh().find(bucket))


# -- directories, renames, links ------------------------------------------------------------


def test_fileops_differs_from_memory_only_where_s3_declares_it(s3_url: str,
                                                                s3_fresh: Fresh) -> None:
    memory = run(FILEOPS, mounts={"/": "mem://"})
    s3 = run(FILEOPS, mounts={"/": s3_url})
    assert s3.exit_code == memory.exit_code == 0
    lines = zip(memory.stdout.decode().splitlines(), s3.stdout.decode().splitlines(),
                strict=True)
    # symlink and link are ENOTSUP (58); what follows from there being no link differs too.
    assert [(mem, s3) for mem, s3 in lines if mem != s3] == [
        ("symlink: ok", "symlink: errno 58"),
        ("readlink: 6 'b/log2'", "readlink: -1 ''"),
        ("stat through link: ok", "stat through link: errno 44"),
        ("linked size 8", "linked size 20"),
        ("lstat link: ok", "lstat link: errno 44"),
        ("is link 1", "is link 0"),
        ("hard link: ok", "hard link: errno 58"),
        ("nlink after link 2", "nlink after link 1"),
        ("unlink hard: ok", "unlink hard: errno 44"),
        ("ls a: . .. b f.txt link", "ls a: . .. b f.txt"),
    ]
    # mkdir a, a/b made markers; the rename moved a/log into a/b; rmdir c took its marker.
    assert keys(s3_fresh, s3_url) == ["a/", "a/b/", "a/b/log2", "a/f.txt"]


def test_empty_directories_are_marker_objects(s3_url: str, s3_fresh: Fresh,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bucket = s3_url.removeprefix("s3://")
    fs = s3_fresh()
    fs.mkdir(f"{bucket}/by-s3fs", create_parents=False)
    assert not s3_fresh().exists(f"{bucket}/by-s3fs")  # s3fs makes nothing below a bucket
    fs.pipe_file(f"{bucket}/implied/f.txt", b"in a prefix with no marker")
    code, out, _ = cli(capsys, "--mount", f"/={s3_url}", FSTOOL, "mkdir", "/d", "mkdir",
                       "/d/e", "ls", "/", "ls", "/d", "ls", "/d/e", "stat", "/d/e",
                       "stat", "/implied", "cat", "/implied/f.txt")
    assert (code, out) == (0, [
        "mkdir /d: ok", "mkdir /d/e: ok", "ls /: d implied", "ls /d: e", "ls /d/e:",
        "stat /d/e: directory, 0 bytes", "stat /implied: directory, 0 bytes",
        "cat /implied/f.txt: in a prefix with no marker",
    ])
    assert keys(s3_fresh, s3_url) == ["d/", "d/e/", "implied/f.txt"]


def test_a_directory_emptied_by_unlink_or_rename_stays(s3_url: str, s3_fresh: Fresh,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fs = s3_fresh()
    bucket = s3_url.removeprefix("s3://")
    fs.pipe_file(f"{bucket}/a/one", b"1")
    fs.pipe_file(f"{bucket}/b/two", b"2")
    code, out, _ = cli(capsys, "--mount", f"/={s3_url}", FSTOOL, "rm", "/a/one",
                       "mv", "/b/two", "/two", "ls", "/", "ls", "/a", "ls", "/b")
    assert (code, out) == (0, ["rm /a/one: ok", "mv /b/two /two: ok", "ls /: a b two",
                               "ls /a:", "ls /b:"])
    assert keys(s3_fresh, s3_url) == ["a/", "b/", "two"]


def test_rename_of_a_directory_copies_every_object(s3_url: str, s3_fresh: Fresh,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--mount", f"/={s3_url}", FSTOOL, "mkdir", "/d", "mkdir",
                       "/d/empty", "put", "/d/f[1]", "bracketed", "mv", "/d", "/moved",
                       "ls", "/moved", "cat", "/moved/f[1]", "stat", "/d")
    assert code == 1
    assert out[-4:] == ["mv /d /moved: ok", "ls /moved: empty f[1]", "cat /moved/f[1]: bracketed",
                        "stat /d: errno 44 (No such file or directory)"]
    assert keys(s3_fresh, s3_url) == ["moved/", "moved/empty/", "moved/f[1]"]


def test_times_come_from_last_modified(s3_url: str, s3_fresh: Fresh) -> None:
    bucket = s3_url.removeprefix("s3://")
    s3_fresh().pipe_file(f"{bucket}/f", b"x")
    modified = s3_fresh().info(f"{bucket}/f")["LastModified"]
    stat = open_mount(s3_url).lstat("f")
    assert stat.mtime_ns == int(modified.timestamp()) * 10**9
    assert stat.mtime_ns > 0


# -- writes reach the bucket ----------------------------------------------------------------


def test_a_file_left_open_is_uploaded_at_exit(s3_url: str, s3_fresh: Fresh) -> None:
    result = run(NOCLOSE, ["/left-open.txt"], mounts={"/": s3_url})
    assert result.exit_code == 3
    bucket = s3_url.removeprefix("s3://")
    assert s3_fresh().cat(f"{bucket}/left-open.txt") == b"written, never closed\n"


def holder(url: MountSource, path: bytes, text: bytes) -> tuple[Session, int]:
    """holder.wasm with ``path`` created and ``text`` written to it, the file left open."""
    session = Session(HOLDER, mounts={"/": url})
    buffer = session.call("text")
    session.write_memory(buffer, path + b"\0")
    fd = session.call("create")
    session.write_memory(buffer, text)
    assert session.call("put", fd, len(text)) == len(text)
    return session, fd


def test_a_file_open_in_a_trapped_client_is_kept_not_published(s3_url: str,
                                                               s3_fresh: Fresh) -> None:
    session, _ = holder(s3_url, b"held.txt", b"every byte, then a crash")
    bucket = s3_url.removeprefix("s3://")
    assert not s3_fresh().exists(f"{bucket}/held.txt")  # created here, stored at close
    with pytest.raises(GuestTrap):
        session.call("die_trap")
    session.close()
    # The crash may have come mid-write: the data is kept on the host, not published.
    assert not s3_fresh().exists(f"{bucket}/held.txt")
    [unsaved] = session.host.unsaved
    assert unsaved.path == "/held.txt" and unsaved.kept is not None
    assert unsaved.kept.read_bytes() == b"every byte, then a crash"


def test_handles_on_one_name_share_what_is_written(s3_url: str, s3_fresh: Fresh) -> None:
    session = Session(HOLDER, mounts={"/": s3_url})
    buffer = session.call("text")
    session.write_memory(buffer, b"shared.txt\0")
    writer, reader = session.call("create"), session.call("create")
    session.write_memory(buffer, b"seen at once")
    assert session.call("put", writer, 12) == 12
    assert session.call("get", reader) == 12  # as on a disk, before any upload
    assert session.read_memory(buffer, 12) == b"seen at once"
    bucket = s3_url.removeprefix("s3://")
    assert not s3_fresh().exists(f"{bucket}/shared.txt")
    assert session.call("shut", writer) == 0  # the writer's close uploads
    assert s3_fresh().cat(f"{bucket}/shared.txt") == b"seen at once"
    session.close()


def test_a_large_upload_shows_progress_on_a_terminal_only(
        s3_url: str, s3_fresh: Fresh, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    size = 9 << 20  # over the 8 MiB kept in memory: spilled to disk, uploaded with a bar
    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # draw however fast the upload is
    monkeypatch.setenv("VIRTWASI_PROGRESS", "always")
    code, out, err = cli(capsys, "--mount", f"/={s3_url}", BLOCKTOOL, "fill", "/big", str(size))
    assert (code, out) == (0, [f"fill /big: {size} bytes"])
    bucket = s3_url.removeprefix("s3://")
    assert f"uploading {bucket}/big [" in err and "100%" in err
    monkeypatch.delenv("VIRTWASI_PROGRESS")  # captured stderr is no terminal: quiet
    code, out, err = cli(capsys, "--mount", f"/={s3_url}", BLOCKTOOL, "fill", "/big", str(size),
                         "check", "/big", str(size), "pread", "/big", str(size - 5), "5")
    assert (code, err) == (0, "")
    tail = "".join(chr(ord("a") + i % 26) for i in range(size - 5, size))  # the pattern
    assert out[1:] == [f"check /big: ok, {size} bytes", f"pread /big {size - 5}: {tail}"]
    assert s3_fresh().size(f"{bucket}/big") == size


# -- an unreachable endpoint ----------------------------------------------------------------


class Endpoint:
    """A second endpoint onto the same buckets (moto keeps them in this process) that a test
    stops and restarts, on the same port so that a mount made before finds it again."""

    def __init__(self) -> None:
        self._server: AbstractContextManager[str] | None = s3_server()
        self.url = self._server.__enter__()
        self._port = int(self.url.rpartition(":")[2])

    def stop(self) -> None:
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server = None

    def restart(self) -> None:
        self._server = s3_server(self._port)
        self._server.__enter__()


@pytest.fixture
def endpoint(s3_endpoint: str) -> Iterator[Endpoint]:
    running = Endpoint()
    yield running
    running.stop()


def test_an_unreachable_endpoint_is_eio_and_nothing_is_reported_saved(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint) -> None:
    session, fd = holder(Remote(s3_url, {"endpoint_url": endpoint.url}), b"f.txt", b"unsaved")
    endpoint.stop()
    assert session.call("shut", fd) == -Errno.IO  # the close could not upload: EIO, no hang
    session.write_memory(session.call("text"), b"g.txt\0")
    fd = session.call("create")  # the mount knows the name is free: the store is not asked
    assert fd >= 0
    assert session.call("shut", fd) == -Errno.IO  # storing it needs the store
    session.close()
    bucket = s3_url.removeprefix("s3://")
    assert not s3_fresh().exists(f"{bucket}/f.txt")  # neither the name nor the write landed


def test_data_of_a_failed_upload_waits_for_a_retry(s3_url: str, s3_fresh: Fresh,
                                                   endpoint: Endpoint) -> None:
    storage = open_mount(Remote(s3_url, {"endpoint_url": endpoint.url}))
    assert isinstance(storage, FsspecStorage)
    session, _ = holder(storage, b"kept.txt", b"written before the endpoint went away")
    endpoint.stop()
    with pytest.raises(UploadError) as failed:
        session.close()  # teardown closes the file: the upload fails, and says so
    assert failed.value.errno == errno.EIO
    assert storage.unsaved == ["kept.txt"]
    endpoint.restart()
    storage.retry_uploads()
    assert storage.unsaved == []
    bucket = s3_url.removeprefix("s3://")
    assert s3_fresh().cat(f"{bucket}/kept.txt") == b"written before the endpoint went away"


def test_the_command_line_says_when_written_data_was_not_saved(s3_url: str,
                                                               endpoint: Endpoint) -> None:
    env = os.environ | {"AWS_ENDPOINT_URL": endpoint.url}
    with subprocess.Popen([sys.executable, "-m", "virtwasi", "run", "--mount", f"/={s3_url}",
                           BLOCKTOOL, "leave", "/f.txt", "unsaved", "wait"], env=env, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as guest:
        assert guest.stdout is not None
        assert guest.stdout.readline() == "leave /f.txt: ok\n"  # written, left open
        endpoint.stop()
        out, err = guest.communicate("", timeout=120)  # the guest exits, teardown uploads
    assert (guest.returncode, out) == (1, "wait: done\n")
    assert err.startswith("virtwasi: /f.txt: not saved (upload failed: ")
    assert len(err.splitlines()) == 1  # one line, no traceback


# -- how a user names a bucket ----------------------------------------------------------------


def test_fsspec_s3_variables_configure_the_command_line(s3_url: str, s3_fresh: Fresh) -> None:
    bucket = s3_url.removeprefix("s3://")
    s3_fresh().pipe_file(f"{bucket}/p/x.txt", b"configured by fsspec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"FSSPEC_S3_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "FSSPEC_S3_KEY": "any", "FSSPEC_S3_SECRET": "any"}
    done = subprocess.run([sys.executable, "-m", "virtwasi", "run", "--mount",
                           f"/data={s3_url}/p", FSTOOL, "ls", "/data", "cat", "/data/x.txt"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["ls /data: x.txt", "cat /data/x.txt: configured by fsspec"]


def test_chained_urls_read_a_zip_and_a_cache_and_refuse_writes(
        s3_url: str, s3_fresh: Fresh, capsys: pytest.CaptureFixture[str]) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("docs/a.txt", "zipped")
    bucket = s3_url.removeprefix("s3://")
    fs = s3_fresh()
    fs.pipe_file(f"{bucket}/site.zip", archive.getvalue())
    fs.pipe_file(f"{bucket}/p/x.txt", b"cached")
    code, out, _ = cli(capsys, "--mount", f"/z=zip::{s3_url}/site.zip",
                       "--mount", f"/c=simplecache::{s3_url}/p", FSTOOL,
                       "ls", "/z/docs", "cat", "/z/docs/a.txt", "ls", "/c", "cat", "/c/x.txt",
                       "put", "/c/x.txt", "new", "mkdir", "/c/d", "put", "/z/n", "x")
    assert code == 1
    assert out == [
        "ls /z/docs: a.txt", "cat /z/docs/a.txt: zipped", "ls /c: x.txt", "cat /c/x.txt: cached",
        # A cache's local copy would go stale under a write: caches are read-only.
        "put /c/x.txt: errno 69 (Read-only file system)",
        "mkdir /c/d: errno 69 (Read-only file system)",
        "put /z/n: errno 69 (Read-only file system)",
    ]
    assert fs.cat(f"{bucket}/p/x.txt") == b"cached"


def test_storage_options_come_with_a_remote_mount(s3_url: str, endpoint: Endpoint,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # wrong unless overridden
    remote = Remote(s3_url, {"endpoint_url": endpoint.url})
    result = run(FSTOOL, ["put", "/f", "via options", "cat", "/f"], mounts={"/": remote})
    assert result.stdout.decode().splitlines() == ["put /f: ok", "cat /f: via options"]
