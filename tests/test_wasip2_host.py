"""WASI 0.2 served by the implementations, called as a component's lowered calls call it.

Each test makes a world with the virtual implementation and a component instance, then calls
:func:`virtwasi.wasip2.wasi_host`'s functions with indices in that instance's table and the
canonical ABI's Python values, as the linker does for a component's imports. What a real
component sees through the linker is in ``test_wasip2_components.py``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Set
from pathlib import Path
from typing import Any

import pytest
from componentkit import wasi_world, wit_interfaces

from virtwasi.component.values import Err, Ok, Trap, Variant
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.virtual import virtual_implementation
from virtwasi.wasi.common import ProcExit
from virtwasi.wasip2 import INTERFACES, wasi_host
from virtwasi.world import Context, Instance, ResourceType, Semantics, World
from virtwasi.world import Trap as WorldTrap

FILE = frozenset({"read", "write"})


class Component:
    """A component instance of a world over an in-memory tree at ``/`` (and ``/data``),
    with the host serving its WASI imports."""

    def __init__(self, stdin: bytes | None = b"", mounts: int = 1) -> None:
        self.world = World(Semantics.COMPONENT_MODEL)
        storages = [("/", MemoryStorage()), ("/data", MemoryStorage())][:mounts]
        self.wasi = self.world.instantiate("wasi", virtual_implementation(storages))
        contexts: list[Context] = []

        def definition(ctx: Context) -> dict[str, Any]:
            contexts.append(ctx)
            return {}

        self.instance: Instance = self.world.instantiate("component", definition,
                                                         {"wasi": self.wasi})
        self.ctx = contexts[0]
        self.out, self.err = io.BytesIO(), io.BytesIO()
        self.host = wasi_host(self.ctx, args=["prog", "one"], env=[("HOME", "/")],
                              stdin=None if stdin is None else io.BytesIO(stdin),
                              stdout=self.out, stderr=self.err)
        self.root = self.preopens()[0][0]

    def __call__(self, interface: str, name: str, *args: Any) -> Any:
        return self.host[f"wasi:{interface}"].funcs[name](*args)

    def fs(self, method: str, *args: Any) -> Any:
        return self("filesystem/types", f"[method]descriptor.{method}", *args)

    def stream(self, kind: str, method: str, *args: Any) -> Any:
        return self("io/streams", f"[method]{kind}-stream.{method}", *args)

    def preopens(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = self("filesystem/preopens", "get-directories")
        return found

    def open(self, path: str, open_flags: Set[str] = frozenset(), flags: Set[str] = FILE,
             at: int | None = None) -> int:
        opened = self.fs("open-at", self.root if at is None else at, set(), path,
                         set(open_flags), set(flags))
        assert isinstance(opened, Ok), opened
        handle: int = opened.value
        return handle

    def resource(self, interface: str, name: str) -> ResourceType:
        return self.host[f"wasi:{interface}"].resources[name]

    def drop(self, interface: str, name: str, handle: int) -> None:
        self.ctx.resource_drop(self.resource(interface, name), handle)


@pytest.fixture
def c() -> Iterator[Component]:
    component = Component()
    yield component
    if not component.instance.destroyed:
        component.world.destroy(component.instance)


def ok(result: Any) -> Any:
    assert isinstance(result, Ok), result
    return result.value


def test_every_function_and_resource_of_wasi_0_2_is_served(tmp_path: Path,
                                                            c: Component) -> None:
    wit = wit_interfaces(wasi_world("wasi:cli/imports", tmp_path))
    assert set(wit) == set(INTERFACES) == set(c.host)
    for name, (functions, resources) in wit.items():
        assert set(c.host[name].funcs) == functions, name
        assert set(c.host[name].resources) == resources, name
    assert c.host["wasi:filesystem/types"].resources["descriptor"] is c.wasi.exports[
        "descriptor"]


def test_streams_keep_their_own_positions_and_end_closed(c: Component) -> None:
    d = c.open("f.txt", {"create"})
    out = ok(c.fs("write-via-stream", d, 0))
    assert ok(c.stream("output", "check-write", out)) == 1 << 20
    assert ok(c.stream("output", "write", out, b"hello ")) is None
    assert ok(c.stream("output", "blocking-write-and-flush", out, b"there")) is None
    appender = ok(c.fs("append-via-stream", d))
    ok(c.stream("output", "blocking-write-and-flush", appender, b"!"))
    ok(c.stream("output", "write", ok(c.fs("write-via-stream", d, 1)), b"E"))
    reader = ok(c.fs("read-via-stream", d, 0))
    assert ok(c.stream("input", "blocking-read", reader, 4)) == b"hEll"  # at most len
    assert ok(c.stream("input", "skip", reader, 3)) == 3
    assert ok(c.stream("input", "read", reader, 100)) == b"here!"
    assert c.stream("input", "read", reader, 100) == Err(Variant("closed"))
    assert c.stream("input", "blocking-read", reader, 1) == Err(Variant("closed"))
    assert ok(c.fs("read", d, 100, 7)) == (b"here!", False)
    assert ok(c.fs("read", d, 100, 12)) == (b"", True)
    assert ok(c.fs("write", d, b"H", 0)) == 1
    assert ok(c.fs("stat", d))["size"] == 12
    c.drop("io/streams", "output-stream", out)
    assert ok(c.fs("read", d, 5, 0)) == (b"HEllo", False)  # the descriptor lives on


def test_splice_moves_what_the_source_has(c: Component) -> None:
    source, target = c.open("a", {"create"}), c.open("b", {"create"})
    ok(c.fs("write", source, b"0123456789", 0))
    reader = ok(c.fs("read-via-stream", source, 2))
    writer = ok(c.fs("write-via-stream", target, 0))
    assert ok(c.stream("output", "splice", writer, reader, 3)) == 3
    assert ok(c.stream("output", "blocking-splice", writer, reader, 100)) == 5
    assert c.stream("output", "splice", writer, reader, 1) == Err(Variant("closed"))
    assert ok(c.stream("output", "write-zeroes", writer, 2)) is None
    assert ok(c.stream("output", "blocking-write-zeroes-and-flush", writer, 1)) is None
    assert ok(c.fs("read", target, 100, 0)) == (b"23456789\0\0\0", False)


def test_a_failed_write_is_reported_once_then_the_stream_is_closed(c: Component) -> None:
    ok(c.fs("write", c.open("f", {"create"}), b"x", 0))
    read_only = c.open("f", flags={"read"})
    out = ok(c.fs("write-via-stream", read_only, 0))
    assert ok(c.stream("output", "write", out, b"data")) is None  # found at the next check
    with pytest.raises(Trap, match="check-write"):
        c.stream("output", "write", out, b"again")
    failed = c.stream("output", "check-write", out)
    assert isinstance(failed, Err) and failed.value.case == "last-operation-failed"
    error = failed.value.value
    assert c("filesystem/types", "filesystem-error-code", error) == "bad-descriptor"
    assert "bad-descriptor" in c("io/error", "[method]error.to-debug-string", error)
    assert c.stream("output", "flush", out) == Err(Variant("closed"))
    blocking = ok(c.fs("write-via-stream", read_only, 0))
    failed = c.stream("output", "blocking-write-and-flush", blocking, b"now")
    assert failed.value.case == "last-operation-failed"  # at once, when blocking
    assert c.stream("output", "blocking-flush", blocking) == Err(Variant("closed"))


def test_what_traps_and_what_a_directory_answers(c: Component) -> None:
    out = ok(c.fs("write-via-stream", c.open("f", {"create"}), 0))
    with pytest.raises(Trap, match="4096"):
        c.stream("output", "blocking-write-and-flush", out, bytes(4097))
    with pytest.raises(Trap, match="4096"):
        c.stream("output", "blocking-write-zeroes-and-flush", out, 4097)
    with pytest.raises(Trap, match="check-write"):
        c.stream("output", "write-zeroes", out, (1 << 20) + 1)
    with pytest.raises(Trap, match="empty"):
        c("io/poll", "poll", [])
    assert c.fs("read-via-stream", c.root, 0) == Err("is-directory")
    assert c.fs("write-via-stream", c.root, 0) == Err("bad-descriptor")
    assert c.fs("append-via-stream", c.root) == Err("bad-descriptor")
    assert c.fs("read", c.root, 1, 0) == Err("bad-descriptor")


def test_directories_and_names(c: Component) -> None:
    ok(c.fs("create-directory-at", c.root, "d"))
    d = c.open("d", {"directory"}, {"read", "mutate-directory"})
    ok(c.fs("write", c.open("g", {"create"}, at=d), b"12345", 0))
    ok(c.fs("symlink-at", d, "g", "link"))
    listing = ok(c.fs("read-directory", d))
    entries = []
    while (entry := ok(c("filesystem/types",
                         "[method]directory-entry-stream.read-directory-entry", listing))):
        entries.append(entry)
    assert sorted(entries, key=lambda e: e["name"]) == [
        {"type": "regular-file", "name": "g"}, {"type": "symbolic-link", "name": "link"}]
    assert ok(c.fs("readlink-at", d, "link")) == "g"
    status = ok(c.fs("stat-at", d, {"symlink-follow"}, "link"))
    assert (status["type"], status["size"], status["link-count"]) == ("regular-file", 5, 1)
    assert set(status["data-modification-timestamp"]) == {"seconds", "nanoseconds"}
    assert ok(c.fs("stat-at", d, set(), "link"))["type"] == "symbolic-link"
    assert ok(c.fs("get-type", d)) == "directory"
    assert ok(c.fs("get-flags", d)) == {"read", "mutate-directory"}
    again = c.open("d", {"directory"}, {"read"})
    assert c.fs("is-same-object", d, again) is True
    assert ok(c.fs("metadata-hash", d)) == ok(c.fs("metadata-hash-at", c.root, set(), "d"))
    ok(c.fs("rename-at", d, "g", c.root, "moved"))
    ok(c.fs("link-at", c.root, set(), "moved", d, "hard"))
    assert ok(c.fs("stat-at", c.root, set(), "moved"))["link-count"] == 2
    ok(c.fs("unlink-file-at", d, "hard"))
    ok(c.fs("unlink-file-at", d, "link"))
    ok(c.fs("remove-directory-at", c.root, "d"))
    ok(c.fs("set-times-at", c.root, set(), "moved", Variant("timestamp", {
        "seconds": 7, "nanoseconds": 5}), Variant("no-change")))
    assert ok(c.fs("stat-at", c.root, set(), "moved"))["data-access-timestamp"] == {
        "seconds": 7, "nanoseconds": 5}


def test_failures_are_error_codes_by_name(c: Component) -> None:
    f = c.open("f", {"create"})
    assert c.fs("open-at", c.root, set(), "f", {"create", "exclusive"}, FILE) == Err("exist")
    assert c.fs("open-at", c.root, set(), "nope", set(), FILE) == Err("no-entry")
    assert c.fs("open-at", c.root, set(), "f", {"directory"}, {"read"}) == Err("not-directory")
    assert c.fs("stat-at", f, set(), "x") == Err("not-directory")  # not preview 1's EBADF
    assert c.fs("read-directory", f) == Err("not-directory")
    assert c.fs("remove-directory-at", c.root, "f") == Err("not-directory")
    assert c.fs("advise", f, 0, 2**64 - 1, "will-need") == Err("invalid")
    assert ok(c.fs("advise", f, 0, 10, "dont-need")) is None
    assert ok(c.fs("sync", c.root)) is None  # a directory syncs, as in wasmtime
    ok(c.fs("set-size", f, 3))
    ok(c.fs("sync-data", f))
    assert ok(c.fs("stat", f))["size"] == 3


def test_each_preopen_is_a_new_descriptor() -> None:
    c = Component(mounts=2)
    (first, root), (second, data) = c.preopens()
    assert (root, data) == ("/", "/data") and len({c.root, first, second}) == 3
    assert ok(c.fs("get-type", second)) == "directory"
    ok(c.fs("create-directory-at", second, "only-in-data"))
    assert c.fs("stat-at", first, set(), "only-in-data") == Err("no-entry")
    c.world.destroy(c.instance)
    assert c.wasi.exports["descriptor"].live_count == 0  # type: ignore[union-attr]


def test_a_stream_whose_descriptor_was_dropped_traps(c: Component) -> None:
    d = c.open("f", {"create"})
    out = ok(c.fs("write-via-stream", d, 0))
    c.drop("filesystem/types", "descriptor", d)
    with pytest.raises(WorldTrap, match="not a handle"):  # the index is free
        c.stream("output", "write", out, b"x")


@pytest.mark.parametrize("stream", ["output", "input"])
def test_a_stream_whose_descriptors_index_went_to_another_file_traps(stream: str) -> None:
    c = Component()  # each trap locks the component: a fresh one for each
    d = c.open("f", {"create"})
    out = ok(c.fs("write-via-stream", d, 0))
    reader = ok(c.fs("read-via-stream", d, 0))
    c.drop("filesystem/types", "descriptor", d)
    assert c.open("other", {"create"}) == d  # the index is taken again, by another file
    with pytest.raises(Trap, match="dropped"):
        if stream == "output":
            c.stream("output", "blocking-write-and-flush", out, b"x")
        else:
            c.stream("input", "read", reader, 1)


def test_teardown_drops_every_handle_and_closes_every_file(c: Component) -> None:
    d = c.open("f", {"create"})
    ok(c.stream("output", "write", ok(c.fs("write-via-stream", d, 0)), b"kept"))
    ok(c.fs("read-directory", c.root))
    c("io/poll", "[method]pollable.ready", c("clocks/monotonic-clock", "subscribe-duration", 0))
    assert c.instance.handle_count == 5  # the preopen, the file, three of 0.2
    c.world.destroy(c.instance)
    descriptor = c.wasi.exports["descriptor"]
    assert isinstance(descriptor, ResourceType) and descriptor.live_count == 0
    again = Component()
    assert again.fs("stat-at", again.root, set(), "f") == Err("no-entry")  # a new tree


def test_standard_streams_and_the_environment(c: Component) -> None:
    stdin = Component(stdin=b"line one\nline two\n")
    reader = stdin("cli/stdin", "get-stdin")
    assert ok(stdin.stream("input", "blocking-read", reader, 4)) == b"line"
    assert ok(stdin.stream("input", "read", reader, 100)) == b" one\nline two\n"
    assert stdin.stream("input", "read", reader, 100) == Err(Variant("closed"))
    empty = Component(stdin=None)
    assert empty.stream("input", "read", empty("cli/stdin", "get-stdin"), 1) == Err(
        Variant("closed"))
    for name, target in (("stdout", c.out), ("stderr", c.err)):
        stream = c(f"cli/{name}", f"get-{name}")
        ok(c.stream("output", "blocking-write-and-flush", stream, f"to {name}\n".encode()))
        ok(c.stream("output", "write", c(f"cli/{name}", f"get-{name}"), b"!"))
        assert target.getvalue() == f"to {name}\n!".encode()
    assert c("cli/environment", "get-arguments") == ["prog", "one"]
    assert c("cli/environment", "get-environment") == [("HOME", "/")]
    assert c("cli/environment", "initial-cwd") is None
    for stream in ("stdin", "stdout", "stderr"):
        assert c(f"cli/terminal-{stream}", f"get-terminal-{stream}") is None


@pytest.mark.parametrize(("call", "code"), [
    (lambda c: c("cli/exit", "exit", Ok()), 0), (lambda c: c("cli/exit", "exit", Err()), 1),
    (lambda c: c("cli/exit", "exit-with-code", 42), 42)])
def test_exit(c: Component, call: Callable[[Component], None], code: int) -> None:
    with pytest.raises(ProcExit) as exited:
        call(c)
    assert exited.value.code == code


def test_poll_waits_for_the_first_clock_and_answers_every_ready_one(c: Component) -> None:
    clock = "clocks/monotonic-clock"
    start = c(clock, "now")
    soon, later = c(clock, "subscribe-duration", 20_000_000), c(clock, "subscribe-duration",
                                                                 10**12)
    assert c("io/poll", "[method]pollable.ready", soon) is False
    assert c("io/poll", "poll", [later, soon, later]) == [1]
    assert c(clock, "now") >= start + 20_000_000
    stream = c.stream("output", "subscribe", c("cli/stdout", "get-stdout"))
    past = c(clock, "subscribe-instant", start)
    # A clock due at once is ready only from its second look, as in wasmtime.
    assert c("io/poll", "poll", [later, stream, past]) == [1]
    assert c("io/poll", "poll", [later, past, stream]) == [2, 1]  # the older one first
    assert c("io/poll", "poll", [later, c(clock, "subscribe-duration", 0)]) == [1]
    assert c("io/poll", "[method]pollable.ready", soon) is True
    deadline = c(clock, "subscribe-instant", c(clock, "now") + 5_000_000)
    c("io/poll", "[method]pollable.block", deadline)
    assert c("io/poll", "[method]pollable.ready", deadline) is True
    assert c(clock, "resolution") == 1
    wall = c("clocks/wall-clock", "now")
    assert abs(wall["seconds"] - time.time()) < 60 and 0 <= wall["nanoseconds"] < 10**9


def test_randomness(c: Component) -> None:
    assert len(c("random/random", "get-random-bytes", 33)) == 33
    assert c("random/random", "get-random-bytes", 16) != c("random/random",
                                                           "get-random-bytes", 16)
    assert 0 <= c("random/insecure", "get-insecure-random-u64") < 2**64
    seed = c("random/insecure-seed", "insecure-seed")
    assert seed == c("random/insecure-seed", "insecure-seed") and len(seed) == 2
    with pytest.raises(Trap, match="random bytes"):
        c("random/random", "get-random-bytes", (64 << 20) + 1)


def test_no_network(c: Component) -> None:
    network = c("sockets/instance-network", "instance-network")
    assert c.instance.held(network).type_name == "network"
    assert c("sockets/tcp-create-socket", "create-tcp-socket", "ipv4") == Err("access-denied")
    assert c("sockets/udp-create-socket", "create-udp-socket", "ipv6") == Err("access-denied")
    assert c("sockets/ip-name-lookup", "resolve-addresses", network, "localhost") == Err(
        "permanent-resolver-failure")
