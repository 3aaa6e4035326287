"""The hot paths give exactly the answers of the general ones they shortcut.

A lowered membrane call (what the preview 1 adapter binds) must trap as ``membrane.call``
does, with the same reason and message, and lend the handle and mark both instances busy for
the call just the same. The fast walk in path resolution must find what the full walk finds,
and an open of a plain name, decided by the storage alone, must do what the full walk does.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pytest

from virtwasi.filesystem import paths
from virtwasi.filesystem.errors import FsError
from virtwasi.filesystem.interface import MUTATE_DIRECTORY, READ, SYMLINK_FOLLOW, WRITE
from virtwasi.storage.base import FileKind
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.readonly import ReadOnlyStorage
from virtwasi.virtual.descriptors import Descriptor, close_descriptor
from virtwasi.virtual.names import open_at
from virtwasi.wasi.abi import Errno
from virtwasi.wasi.errnos import WasiError
from virtwasi.world import (
    BoundFunc,
    Context,
    Func,
    Instance,
    ResourceType,
    Trap,
    TrapReason,
    World,
    borrow,
    given,
    lent,
    own,
    value,
)


class Lib:
    """A definer of 'thing' (and of an unrelated 'other') whose functions answer with what
    the world shows, during the call, about the handle and the instances."""

    client: Instance
    client_ctx: Context

    def __call__(self, ctx: Context) -> dict[str, Func | ResourceType]:
        thing = ctx.resource_type("thing")
        other = ctx.resource_type("other")

        def observe(rep: Any, *rest: Any) -> tuple[Any, ...]:
            lends = self.client.held(rep["index"]).lends
            return rep["name"], rest, lends, self.client.active, ctx.handle_count

        def new(name: str) -> int:
            return ctx.resource_new(thing, {"name": name, "index": 0})

        def new_other(name: str) -> int:
            return ctx.resource_new(other, {"name": name})

        def note(rep: Any, index: int) -> None:
            rep["index"] = index

        def fail(rep: Any) -> None:
            raise WasiError(Errno.BADF)

        f = ctx.func
        return {
            "thing": thing,
            "new": f(new, [value], [own(thing)]),
            "new_other": f(new_other, [value], [own(other)]),
            "note": f(note, [borrow(thing), value], []),
            "one": f(lambda r: observe(r), [borrow(thing)], [value], "one"),
            "two": f(lambda r, a: observe(r, a), [borrow(thing), value], [value], "two"),
            "three": f(lambda r, a, b: observe(r, a, b), [borrow(thing), value, value],
                       [value], "three"),
            "fail": f(fail, [borrow(thing)], []),
        }


def setup() -> tuple[World, Lib, Instance, Any]:
    world = World("component-model")
    lib = Lib()
    lib_inst = world.instantiate("lib", lib)
    contexts: list[Context] = []

    def client(ctx: Context) -> dict[str, Func | ResourceType]:
        contexts.append(ctx)
        return {}

    lib.client = world.instantiate("client", client, {"lib": lib_inst})
    lib.client_ctx = contexts[0]
    return world, lib, lib_inst, contexts[0].imports["lib"]


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("returned", fn(*args))
    except Trap as trap:
        return ("trap", trap.reason, str(trap), trap.instance)
    except WasiError as exc:
        return ("errno", exc.errno)


CALLS = {"one": (), "two": ("a",), "three": ("a", "b")}


@pytest.mark.parametrize("name", CALLS)
def test_a_lowered_call_lends_and_answers_as_the_membrane_does(name: str) -> None:
    _, lib, _, imports = setup()
    h = imports.new("x")
    imports.note(h, h)
    bound: BoundFunc = imports[name]
    assert bound.lowered is not None
    extra = CALLS[name]
    general = outcome(bound, h, *extra)
    fast = outcome(bound.lowered, h, *extra)
    assert general == fast == ("returned", ("x", extra, 1, 1, 0))
    assert lib.client.held(h).lends == 0 and lib.client.active == 0


@pytest.mark.parametrize("name", CALLS)
def test_a_lowered_call_traps_as_the_membrane_does(name: str) -> None:
    _, lib, _, imports = setup()
    h = imports.new("x")
    imports.note(h, h)
    foreign = imports.new_other("y")  # a handle of another type, in the same table
    freed = imports.new("z")
    bound: BoundFunc = imports[name]  # bound before the slot is freed
    lib.client_ctx.resource_drop(imports["thing"], freed)
    extra = CALLS[name]
    for bad in (0, -1, 99, freed, foreign, "1", None, 1.0, True):
        assert outcome(bound, bad, *extra) == outcome(bound.lowered, bad, *extra), bad
    assert outcome(imports.fail, h) == outcome(imports["fail"].lowered, h) == ("errno", Errno.BADF)


def test_a_lowered_call_into_or_from_a_destroyed_instance_traps() -> None:
    for victim in ("lib", "client"):
        world, lib, lib_inst, imports = setup()
        h = imports.new("x")
        bound: BoundFunc = imports["one"]
        world.destroy(lib_inst if victim == "lib" else lib.client)
        general, fast = outcome(bound, h), outcome(bound.lowered, h)
        assert general == fast and general[0] == "trap", (victim, general)


def _tree() -> MemoryStorage:
    s = MemoryStorage(clock=lambda: 0)  # readlink marks atime: keep the two walks' stats equal
    s.mkdir("d")
    s.mkdir("d/e")
    s.open("f", create=True).close()
    s.open("d/g", create=True).close()
    s.symlink("d", "ld")
    s.symlink("f", "lf")
    s.symlink("nowhere", "dangling")
    s.symlink("../f", "d/up")
    s.symlink("/abs", "abs")
    return s


def _walk(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        found = fn(*args, **kw)
    except (FsError, OSError) as exc:
        return type(exc), getattr(exc, "code", None) or getattr(exc, "errno", None)
    return found


NAMES = ["d", "e", "f", "g", "ld", "lf", "dangling", "up", "abs", "missing", ".", "..", ""]


@pytest.mark.parametrize("follow", [False, True])
def test_the_fast_walk_finds_what_the_full_walk_finds(
    follow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _tree()
    shortcut = paths._plain
    for start in ("", "d"):
        for n in (1, 2, 3):
            for parts in itertools.product(NAMES, repeat=n):
                path = "/".join(parts)
                monkeypatch.setattr(paths, "_plain", shortcut)
                fast = _walk(paths.resolve, storage, start, path, follow=follow)
                monkeypatch.setattr(paths, "_plain", lambda *args: None)  # the full walk only
                slow = _walk(paths.resolve, storage, start, path, follow=follow)
                assert fast == slow, (start, path)
                status = _walk(paths.status, storage, start, path, follow=follow)
                expected = slow.stat if isinstance(slow, paths.Resolved) else slow
                assert status == expected, (start, path)


def _snapshot(storage: MemoryStorage) -> list[tuple[Any, ...]]:
    found = []
    for directory in ("", "d", "d/e"):
        for entry in storage.listdir(directory):
            path = f"{directory}/{entry.name}" if directory else entry.name
            st = storage.lstat(path)  # all but the device, which each tree has its own of
            found.append((path, st.kind, st.size, st.ino, st.nlink, st.mtime_ns))
    return found


def _opened(storage: Any, start: str, *args: Any) -> Any:
    try:
        desc, kind, flags = open_at(Descriptor(storage, start, FileKind.DIRECTORY, None,
                                               READ | MUTATE_DIRECTORY), *args)
    except (FsError, OSError) as exc:
        return type(exc), getattr(exc, "code", None) or getattr(exc, "errno", None)
    close_descriptor(desc)
    return desc.path, desc.kind, desc.flags, desc.ino, kind, flags


@pytest.mark.parametrize("read_only", [False, True])
def test_an_open_of_a_plain_name_answers_what_the_full_walk_answers(
        read_only: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage's own open decides a plain name; the answer, and what the open did to
    the tree, are the full walk's, for every kind of name and every flag."""
    shortcut = paths.plain_name
    for start, path_flags, open_flags, flags in itertools.product(
            ("", "d"), (0, SYMLINK_FOLLOW), range(16), (READ, READ | WRITE, WRITE)):
        for name in [*NAMES, "new", "x" * 300, "a\0b"]:
            answers = []
            for plain in (shortcut, lambda start, path: None):
                monkeypatch.setattr(paths, "plain_name", plain)
                tree = _tree()
                storage = ReadOnlyStorage(tree) if read_only else tree
                got = _opened(storage, start, path_flags, name, open_flags, flags)
                answers.append((got, _snapshot(tree)))
            assert answers[0] == answers[1], (start, name, path_flags, open_flags, flags)


def maker_world(semantics: str) -> tuple[World, Instance, Context, Any, list[str]]:
    """A definer whose ``open`` answers a representation (the world makes the handle) and
    whose destructor notes what it ended; the client's context and its view of it."""
    closed: list[str] = []

    def lib(ctx: Context) -> dict[str, Func | ResourceType]:
        thing = ctx.resource_type("thing", destructor=lambda rep: closed.append(rep["name"]))

        def make(name: str) -> dict[str, str]:
            return {"name": name}

        def open_(rep: dict[str, str], name: str) -> Any:
            return {"name": f"{rep['name']}/{name}"} if name != "int" else 7

        def peek(rep: dict[str, str], extra: str) -> tuple[str, str, int]:
            return rep["name"], extra, ctx.handle_count  # the copy a 2021 call holds

        def open4(rep: dict[str, str], name: str, b: int, c: int, d: int) -> Any:
            made = {"int": 7, "bool": True}.get(name, {"name": f"{rep['name']}/{name}"})
            if name == "short":
                return made, b
            if name == "list":
                return [made, b, c + d]
            return made, b, c + d  # an open's shape: the new one and what else it says

        f = ctx.func
        return {"thing": thing,
                "open4": f(open4, [lent(thing), value, value, value, value],
                           [given(thing), value, value], "open4", representations=True),
                "peek": f(peek, [lent(thing), value], [value], "peek", representations=True),
                "new": f(make, [value], [given(thing)], "new", representations=True),
                "open": f(open_, [lent(thing), value], [given(thing)], "open",
                          representations=True)}

    world = World(semantics)
    lib_inst = world.instantiate("lib", lib)
    contexts: list[Context] = []

    def client(ctx: Context) -> dict[str, Func | ResourceType]:
        contexts.append(ctx)
        return {}

    client_inst = world.instantiate("client", client, {"lib": lib_inst})
    return world, client_inst, contexts[0], contexts[0].imports["lib"], closed


SEMANTICS = ["component-model", "proposal-2021", "transparent"]


def holdings(world: World) -> list[tuple[str, tuple[Any, ...]]]:
    return [(inst.name, tuple((h.index, h.kind, h.alive, h.refs, h.lends)
                              for h in inst.holdings())) for inst in world.instances]


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_lowered_call_that_makes_a_handle_gives_what_the_membrane_gives(
        semantics: str) -> None:
    answers = []
    for fast in (False, True):
        world, client, _, imports, _ = maker_world(semantics)
        root = imports.new("root")
        bound: BoundFunc = imports["open"]
        call = bound.lowered if fast else bound
        peek = imports["peek"].lowered if fast else imports["peek"]
        got = [outcome(call, root, "a"), outcome(call, root, "b"), outcome(peek, root, "x")]
        for bad in (0, -1, 99, "1", None, True):
            got += [outcome(call, bad, "a"), outcome(peek, bad, "x")]
        got.append(outcome(call, root))  # one argument short
        try:
            call(root, "int")
        except TypeError as exc:  # a representation that would read as a handle
            got.append(("type-error", str(exc)))
        answers.append((got, holdings(world), client.active))
    assert answers[0] == answers[1]
    assert answers[0][0][0] == ("returned", 2)
    assert answers[0][0][-1][0] == "type-error"


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_lowered_open_with_more_results_gives_what_the_membrane_gives(
        semantics: str) -> None:
    answers = []
    for fast in (False, True):
        world, client, _, imports, _ = maker_world(semantics)
        root = imports.new("root")
        bound: BoundFunc = imports["open4"]
        call = bound.lowered if fast else bound
        got = [outcome(call, root, name, 1, 2, 3)
               for name in ("a", "b", "bool", "short", "list")]
        got += [outcome(call, bad, "a", 1, 2, 3) for bad in (0, -1, 99, "1", None, True)]
        try:
            call(root, "int", 1, 2, 3)
        except TypeError as exc:  # a representation that would read as a handle
            got.append(("type-error", str(exc)))
        answers.append((got, holdings(world), client.active))
    assert answers[0] == answers[1]
    assert answers[0][0][0] == ("returned", (2, 1, 5))
    assert answers[0][0][3][:2] == ("trap", TrapReason.BAD_CALL)
    assert answers[0][0][-1][0] == "type-error"


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_bound_ender_ends_as_end_does(semantics: str) -> None:
    answers = []
    for fast in (False, True):
        world, _, ctx, imports, closed = maker_world(semantics)
        thing = imports["thing"]
        assert isinstance(thing, ResourceType)
        end = ctx.ender(thing) if fast else partial(ctx.end, thing)
        root = imports.new("root")
        a, b = imports.open(root, "a"), imports.open(root, "b")
        got = [outcome(end, a), outcome(end, a)]  # the second: a freed slot
        for bad in (0, -1, 99, "1", None):
            got.append(outcome(end, bad))
        got.append(outcome(end, b))
        answers.append((got, list(closed), holdings(world)))
    assert answers[0] == answers[1]
    assert answers[0][1] == ["root/a", "root/b"]
