"""What a guest operation costs in requests to S3, and when other writers' changes show.

Requests are counted by a proxy between the mount and the moto server
(:func:`virtwasi.storage.loopback.counting_proxy`). Each operation runs as a whole guest
(fstool.wasm) on a mount opened for it, and what the mount itself asks when it is opened
(a run with no command) is subtracted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FIXTURES

from virtwasi.cli import main
from virtwasi.runtime import run
from virtwasi.storage.loopback import counting_proxy, s3_options
from virtwasi.storage.mounts import MountSource, Remote, open_mount

FSTOOL = str(FIXTURES / "fstool.wasm")
BATCH = str(FIXTURES / "batch.wasm")
Fresh = Callable[[], Any]


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[tuple[str, list[str]]]:
    with counting_proxy(s3_endpoint) as counted:
        yield counted


@pytest.fixture
def bucket(s3_url: str, s3_fresh: Fresh) -> str:
    """The test's bucket, holding small.txt, and a folder of 100 files."""
    name = s3_url.removeprefix("s3://")
    fs = s3_fresh()
    fs.pipe_file(f"{name}/small.txt", b"hello")
    fs.pipe({f"{name}/folder/f{i:03}": b"x" * i for i in range(100)})
    return name


def guest(source: MountSource, *commands: str, module: str = FSTOOL) -> list[str]:
    result = run(module, list(commands), mounts={"/": source})
    return result.stdout.decode().splitlines()


def counted(proxy: tuple[str, list[str]], bucket: str, *commands: str,
            module: str = FSTOOL) -> tuple[list[str], list[str]]:
    """The output of ``module`` (fstool) run with ``commands`` on a new mount of
    ``bucket`` through the proxy, and the requests it made beyond those of opening the
    mount."""
    endpoint, log = proxy
    mount = Remote(f"s3://{bucket}", s3_options(endpoint))
    start = len(log)
    guest(mount)
    opening = len(log) - start
    start = len(log)
    out = guest(mount, *commands, module=module)
    return out, log[start + opening:]


def test_each_operation_asks_what_it_needs_and_no_more(proxy: tuple[str, list[str]],
                                                       bucket: str) -> None:
    out, asked = counted(proxy, bucket, "cat", "/small.txt")
    assert out == ["cat /small.txt: hello"]
    assert len(asked) <= 2, asked  # the listing of / (the name and its size), the GET

    out, asked = counted(proxy, bucket, "put", "/new.txt", "written")
    assert out == ["put /new.txt: ok"]
    assert len(asked) <= 2, asked  # the listing of / (the name is free), the PUT

    out, asked = counted(proxy, bucket, "stat", "/small.txt")
    assert out == ["stat /small.txt: file, 5 bytes"]
    assert len(asked) <= 1, asked

    out, asked = counted(proxy, bucket, "ls", "/folder")
    assert out == ["ls /folder: " + " ".join(f"f{i:03}" for i in range(100))]
    assert len(asked) <= 2, asked  # / to find the folder, then the folder, one LIST each


def test_a_listing_answers_for_every_name_in_it(proxy: tuple[str, list[str]],
                                               bucket: str) -> None:
    commands = [word for i in (3, 50, 99) for word in ("stat", f"/folder/f{i:03}")]
    out, asked = counted(proxy, bucket, "ls", "/folder", *commands)
    assert out[1:] == ["stat /folder/f003: file, 3 bytes", "stat /folder/f050: file, 50 bytes",
                       "stat /folder/f099: file, 99 bytes"]
    assert len(asked) == 2, asked  # the two listings of ls: the stats ask nothing more


def test_what_this_world_changes_it_sees_at_once(proxy: tuple[str, list[str]], bucket: str,
                                                 s3_fresh: Fresh) -> None:
    out, asked = counted(proxy, bucket, "put", "/made.txt", "abc", "stat", "/made.txt",
                         "ls", "/", "mv", "/small.txt", "/moved.txt", "stat", "/small.txt",
                         "cat", "/moved.txt", "mkdir", "/d", "ls", "/d", "rm", "/made.txt",
                         "ls", "/")
    assert out == [
        "put /made.txt: ok", "stat /made.txt: file, 3 bytes",
        "ls /: folder made.txt small.txt", "mv /small.txt /moved.txt: ok",
        "stat /small.txt: errno 44 (No such file or directory)", "cat /moved.txt: hello",
        "mkdir /d: ok", "ls /d:", "rm /made.txt: ok", "ls /: d folder moved.txt",
    ]
    # Nothing was asked twice: one listing of /, then only the changes themselves (a
    # rename is a copy then a delete).
    assert [line.partition("?")[0] for line in asked] == [
        f"GET /{bucket}", f"PUT /{bucket}/made.txt", f"PUT /{bucket}/moved.txt",
        f"DELETE /{bucket}/small.txt", f"GET /{bucket}/moved.txt", f"PUT /{bucket}/d/",
        f"DELETE /{bucket}/made.txt",
    ]
    fresh = s3_fresh()
    assert sorted(fresh.ls(bucket)) == [f"{bucket}/{name}" for name in ("d", "folder",
                                                                        "moved.txt")]


def test_a_folder_read_in_order_is_fetched_ahead_once(proxy: tuple[str, list[str]],
                                                      bucket: str, s3_fresh: Fresh) -> None:
    out, asked = counted(proxy, bucket, "/folder", "/out", module=BATCH)
    assert out == [f"100 files, {sum(range(100))} bytes"]
    reads = sorted(line for line in asked if line.startswith(f"GET /{bucket}/folder/"))
    assert reads == [f"GET /{bucket}/folder/f{i:03}" for i in range(100)]  # each once
    # The two listings (/ and /folder), the marker of /out, and one PUT per file.
    assert len(asked) == 2 + 1 + 100 + 100, asked
    assert s3_fresh().cat_file(f"{bucket}/out/f042") == b"X" * 42


def test_what_was_fetched_ahead_is_not_read_once_this_world_changed_it(
        proxy: tuple[str, list[str]], bucket: str) -> None:
    # Reading f001 after f000 fetches the next files ahead; f002 is then rewritten here.
    out, _ = counted(proxy, bucket, "cat", "/folder/f000", "cat", "/folder/f001", "put",
                     "/folder/f002", "rewritten", "cat", "/folder/f002", "rm", "/folder/f003",
                     "cat", "/folder/f003")
    assert out == ["cat /folder/f000: ", "cat /folder/f001: x", "put /folder/f002: ok",
                   "cat /folder/f002: rewritten", "rm /folder/f003: ok",
                   "cat /folder/f003: errno 44 (No such file or directory)"]


def another_writer(s3_fresh: Fresh, bucket: str) -> None:
    fs = s3_fresh()
    fs.pipe_file(f"{bucket}/late.txt", b"late")
    fs.rm_file(f"{bucket}/small.txt")


BEFORE = ["ls /: folder small.txt", "stat /late.txt: errno 44 (No such file or directory)"]
AFTER = ["ls /: folder late.txt", "stat /late.txt: file, 4 bytes"]


@pytest.mark.parametrize("options", [{}, {"listings_expiry_time": 3600}],
                         ids=["default", "an hour"])
def test_another_writer_is_not_seen_before_the_cache_expires(
        s3_url: str, s3_fresh: Fresh, bucket: str, options: dict[str, Any]) -> None:
    storage = open_mount(Remote(s3_url, options))
    assert guest(storage, "ls", "/", "stat", "/late.txt") == BEFORE
    another_writer(s3_fresh, bucket)
    # The same mount keeps the tree it saw: one run sees one consistent tree.
    assert guest(storage, "ls", "/", "stat", "/late.txt") == BEFORE
    assert guest(open_mount(Remote(s3_url, options)), "ls", "/", "stat", "/late.txt") == AFTER


def test_another_writer_is_seen_once_the_cache_expires(s3_url: str, s3_fresh: Fresh,
                                                       bucket: str) -> None:
    storage = open_mount(Remote(s3_url, {"listings_expiry_time": 0.5}))
    assert guest(storage, "ls", "/", "stat", "/late.txt") == BEFORE
    another_writer(s3_fresh, bucket)
    time.sleep(0.6)
    assert guest(storage, "ls", "/", "stat", "/late.txt") == AFTER


def test_without_the_cache_every_operation_asks(s3_url: str, s3_fresh: Fresh,
                                                bucket: str) -> None:
    storage = open_mount(Remote(s3_url, {"use_listings_cache": False}))
    assert guest(storage, "ls", "/", "stat", "/late.txt") == BEFORE
    another_writer(s3_fresh, bucket)
    assert guest(storage, "ls", "/", "stat", "/late.txt") == AFTER


def test_the_command_line_takes_the_lifetime_and_refuses_a_bad_one(
        s3_url: str, bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--mount", f"/={s3_url}", "--mount-option",
                 "s3.listings_expiry_time=0.5", FSTOOL, "stat", "/small.txt"]) == 0
    assert capsys.readouterr().out == "stat /small.txt: file, 5 bytes\n"
    assert main(["run", "--mount", f"/={s3_url}", "--mount-option",
                 "s3.listings_expiry_time=-1", FSTOOL, "stat", "/small.txt"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (f"virtwasi: {s3_url}: listings_expiry_time must be seconds (0 or more), "
                       "got -1\n")
