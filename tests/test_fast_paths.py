"""The hot paths give exactly the answers of the general ones they shortcut.

A lowered membrane call (what the preview 1 adapter binds) must trap as ``membrane.call``
does, with the same reason and message, lend the handle and mark both instances busy for
the call just the same, and lock the same instances when a trap escapes them. Under the
component model a trap leaves the client unusable, so each trap is asked of a fresh world.
The fast walk in path resolution must find what the full walk finds, and an open of a plain
name, decided by the storage alone, must do what the full walk does.
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
            raise WasiError(Errno.BADF)  # an answer, declared below

        def bug(rep: Any) -> None:
            raise ZeroDivisionError("a bug: no answer")

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
            "fail": f(fail, [borrow(thing)], [], raises=(WasiError,)),
            "bug": f(bug, [borrow(thing)], []),
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
    except ZeroDivisionError as exc:
        return ("raised", str(exc))


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


def locks(world: World) -> list[tuple[str, str | None]]:
    """Which instances a trap left unusable, and by what."""
    return [(inst.name, None if inst.trapped is None else repr(inst.trapped))
            for inst in world.instances]


@pytest.mark.parametrize("name", CALLS)
def test_a_lowered_call_traps_as_the_membrane_does(name: str) -> None:
    extra = CALLS[name]
    for bad in ("h", 0, -1, 99, "freed", "foreign", "1", None, 1.0, True, "fail", "bug"):
        answers = []
        for fast in (False, True):
            world, lib, _, imports = setup()
            h = imports.new("x")
            imports.note(h, h)
            foreign = imports.new_other("y")  # a handle of another type, in the same table
            freed = imports.new("z")
            bound: BoundFunc = imports[bad if bad in ("fail", "bug") else name]
            lowered = bound.lowered  # bound before the slot is freed
            lib.client_ctx.resource_drop(imports["thing"], freed)
            named = {"h": h, "freed": freed, "foreign": foreign, "fail": h, "bug": h}
            arg = named[bad] if isinstance(bad, str) and bad in named else bad
            args = (arg,) if bad in ("fail", "bug") else (arg, *extra)
            answers.append((outcome(lowered if fast else bound, *args), locks(world)))
        assert answers[0] == answers[1], bad
        if bad == "fail":  # an answer the function declares is no trap: nothing is locked
            assert answers[0] == (("errno", Errno.BADF), [("lib", None), ("client", None)])
        elif bad == "bug":  # any other exception is: it escaped the library, then the client
            locked = "ZeroDivisionError('a bug: no answer')"
            assert answers[0] == (("raised", "a bug: no answer"), [("lib", locked),
                                                                   ("client", locked)])
        elif bad != "h" and bad is not True:  # True is 1: a handle. A trap went back to
            # the client's code, which the test runs: it is locked.
            (kind, *trap), [_, (_, client_lock)] = answers[0]
            assert kind == "trap" and client_lock is not None and str(trap[1]) in client_lock


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


def made(semantics: str, fast: bool, steps: Any) -> tuple[Any, ...]:
    """``steps(call, peek, open4, end, root)`` on a fresh maker world, through the lowered
    calls and the bound ender or through the general ones: what each step answered, the
    holdings after them, the client's calls in progress, and what is locked."""
    world, client, ctx, imports, closed = maker_world(semantics)
    root = imports.new("root")
    thing = imports["thing"]
    assert isinstance(thing, ResourceType)
    bound = [imports[name] for name in ("open", "peek", "open4")]
    calls = [b.lowered if fast else b for b in bound]
    end = ctx.ender(thing) if fast else partial(ctx.end, thing)
    got = []
    for step in steps(*calls, end, root):
        try:
            got.append(outcome(*step))
        except TypeError as exc:  # a representation that would read as a handle
            got.append(("type-error", str(exc)))
    return got, closed, holdings(world), client.active, locks(world)


def alike(semantics: str, *probes: Any) -> list[Any]:
    """Each probe on a fresh world, general then fast: the answers must be the same."""
    answers = []
    for probe in probes:
        general, fast = made(semantics, False, probe), made(semantics, True, probe)
        assert general == fast, general
        answers.append(general)
    return answers


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_lowered_call_that_makes_a_handle_gives_what_the_membrane_gives(
        semantics: str) -> None:
    good = alike(semantics, lambda call, peek, _4, _e, root: [
        (call, root, "a"), (call, root, "b"), (peek, root, "x")])[0]
    assert good[0][0] == ("returned", 2)
    for bad in (0, -1, 99, "1", None, True):
        alike(semantics, lambda call, _p, _4, _e, root, bad=bad: [(call, bad, "a")],
              lambda _c, peek, _4, _e, root, bad=bad: [(peek, bad, "x")])
    alike(semantics, lambda call, _p, _4, _e, root: [(call, root)])  # one argument short
    int_rep = alike(semantics, lambda call, _p, _4, _e, root: [(call, root, "int")])[0]
    assert int_rep[0][0][0] == "type-error"


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_lowered_open_with_more_results_gives_what_the_membrane_gives(
        semantics: str) -> None:
    answers = alike(semantics, *(
        lambda _c, _p, open4, _e, root, name=name: [(open4, root, name, 1, 2, 3)]
        for name in ("a", "b", "bool", "short", "list", "int")))
    assert answers[0][0][0] == ("returned", (2, 1, 5))
    assert answers[3][0][0][:2] == ("trap", TrapReason.BAD_CALL)
    assert answers[-1][0][0][0] == "type-error"
    for bad in (0, -1, 99, "1", None, True):
        alike(semantics, lambda _c, _p, open4, _e, root, bad=bad: [(open4, bad, "a", 1, 2, 3)])


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_bound_ender_ends_as_end_does(semantics: str) -> None:
    def opened(call: Any, root: int) -> tuple[int, int]:
        return call(root, "a"), call(root, "b")

    twice = alike(semantics, lambda call, _p, _4, end, root: [
        (end, a) for a in [opened(call, root)[0]] * 2])[0]  # the second: a freed slot
    assert twice[1] == ["root/a"]
    both = alike(semantics, lambda call, _p, _4, end, root: [
        (end, h) for h in opened(call, root)])[0]
    assert both[1] == ["root/a", "root/b"]
    for bad in (0, -1, 99, "1", None):
        alike(semantics, lambda call, _p, _4, end, root, bad=bad: [(end, bad)])


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_lowered_call_into_a_running_instance_answers_as_the_membrane_does(
        semantics: str) -> None:
    """Under the component model a call into an instance that is running one traps
    (reentrance) on every path; under the other semantics it runs."""
    answers = []
    for fast in (False, True):
        world, client, _, imports, _ = maker_world(semantics)
        root = imports.new("root")
        lib_inst = world.instances[0]
        calls = {name: imports[name].lowered if fast else imports[name]
                 for name in ("open", "peek", "open4", "new")}
        # The library is running a call, and the client's own code (which catches what it
        # meets, so nothing escapes it) calls into it.
        with world.entering(lib_inst), world.entering(client):
            got = [outcome(calls["open"], root, "a"), outcome(calls["peek"], root, "x"),
                   outcome(calls["open4"], root, "b", 1, 2, 3), outcome(calls["new"], "n")]
        answers.append((got, holdings(world), locks(world)))
    assert answers[0] == answers[1]
    reasons = [answer[1] if answer[0] == "trap" else None for answer in answers[0][0]]
    expected = TrapReason.REENTRANCE if semantics == "component-model" else None
    assert reasons == [expected] * 4
