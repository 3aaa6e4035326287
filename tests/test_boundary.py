"""No public door through the boundary.

An instance's own code acts through its Context and through what its imports give it. This
test builds a world with the virtual WASI implementation, a read-only layer on it (or not),
a Python client and a wasm client, keeps the context of each instance, and walks everything
reachable from them through public attributes: attributes, mapping items, sequence and set
elements, export items. Nothing it reaches may be an ``Instance``, a ``HandleTable``, a
``Handle``, a ``Resource`` or the ``World``, nor the representation of a resource of a type
that another instance defined.

The walk is about the public API: Python itself (``gc``, a closure's ``__closure__`` cells,
any dunder) reaches everything, so names that begin with an underscore are not followed.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from conftest import FIXTURES

import virtwasi.runtime
from virtwasi.filesystem import interface
from virtwasi.filesystem.interface import DirectoryListing
from virtwasi.layers import read_only_layer
from virtwasi.layers.wrapping import Wrapped
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.virtual import virtual_implementation
from virtwasi.virtual.descriptors import Descriptor
from virtwasi.world import (
    BoundFunc,
    Context,
    Definition,
    Exports,
    Func,
    HandleParam,
    Instance,
    ResourceType,
    Semantics,
)
from virtwasi.world.resources import Handle, HandleTable, Resource
from virtwasi.world.world import World

FORBIDDEN: tuple[type, ...] = (Instance, HandleTable, Handle, Resource, World)
ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), types.ModuleType)
BUILTINS = (types.BuiltinFunctionType, types.BuiltinMethodType, types.MethodWrapperType,
            types.WrapperDescriptorType, types.MethodDescriptorType)
DEPTH = 12


class Note:
    """The representation of the Python client's own resource type."""


REPRESENTATIONS = {
    "wasi-virtual": (Descriptor, DirectoryListing),
    "read-only": (Wrapped,),
    "app": (Note,),
}
"""The classes of the representations each instance's types have, by instance name."""


def children(obj: Any) -> Iterator[tuple[str, Any]]:
    """What one step of the walk reaches from ``obj``, each with how it was reached."""
    if isinstance(obj, Mapping):
        for key, item in list(obj.items()):
            yield f"[{key!r}]", item
    elif isinstance(obj, Exports):  # not a Mapping: its items are reached by name
        for name in list(obj):
            yield f"[{name!r}]", obj[name]
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, item in enumerate(obj):
            yield f"[{i}]", item
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            if not field.name.startswith("_"):
                yield f".{field.name}", getattr(obj, field.name)
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            item = getattr(obj, name)
        except Exception:  # a property that refuses (a trap, a link error): nothing reached
            continue
        if not isinstance(item, BUILTINS):
            yield f".{name}", item


def doors(root: Any, start: str, foreign: tuple[type, ...]) -> list[str]:
    """The paths from ``root`` that reach a forbidden object, or an instance of one of the
    ``foreign`` representation classes."""
    found: list[str] = []
    seen: set[int] = set()
    keep: list[Any] = []  # objects made by properties stay alive, so ids are not reused
    stack: list[tuple[Any, str, int]] = [(root, start, 0)]
    while stack:
        obj, path, depth = stack.pop()
        if isinstance(obj, FORBIDDEN) or (foreign and isinstance(obj, foreign)):
            found.append(f"{path} -> {type(obj).__name__}")  # every path to it, not the first
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        if isinstance(obj, ATOMS) or depth >= DEPTH:
            continue
        for step, item in children(obj):
            stack.append((item, path + step, depth + 1))
    return found


def spying(definition: Definition, seen: dict[str, Context], name: str) -> Definition:
    """``definition``, run with a context the test keeps as ``seen[name]``."""

    def spied(ctx: Context) -> Mapping[str, Func | ResourceType]:
        seen[name] = ctx
        return definition(ctx)

    return spied


def build(semantics: Semantics, layered: bool, monkeypatch: pytest.MonkeyPatch,
          ) -> tuple[WasiWorld, dict[str, Context], list[Any]]:
    """The world, the context of every instance in it by name, and what the wasm client's
    preview 1 adapter was given to call."""
    seen: dict[str, Context] = {}
    monkeypatch.setattr(virtwasi.runtime, "virtual_implementation",
                        lambda mounts: spying(virtual_implementation(mounts), seen,
                                              "wasi-virtual"))
    tree = MemoryStorage()
    tree.fs.pipe("/notes.txt", b"buy milk\n")
    tree.fs.mkdir("/d")
    layers = [("read-only", spying(read_only_layer(), seen, "read-only"))] if layered else []
    world = WasiWorld({"/": tree}, semantics=semantics, layers=layers)
    notes: list[int] = []

    def app(ctx: Context) -> Mapping[str, Func | ResourceType]:
        seen["app"] = ctx
        note = ctx.resource_type("note", destructor=lambda rep: None)
        notes.append(ctx.resource_new(note, Note()))
        return {"note": note}

    world.world.instantiate("app", app, {"wasi": world.wasi})
    wasi = seen["app"].imports["wasi"]
    root = wasi.preopen(0)
    wasi.open_at(root, 0, "notes.txt", 0, interface.READ)  # live handles, live reps
    wasi.read_directory(root)
    client = world.client(str(FIXTURES / "hello.wasm"), ["boundary"])
    # It greets, then leaves a file: refused (EROFS) under the read-only layer.
    assert client.start() == (1 if layered else 0) and client.stdout == b"hello, boundary\n"
    given = [getattr(client.adapter, "wasi", None)]
    return world, seen, given


@pytest.mark.parametrize("layered", [False, True], ids=["direct", "read-only-layer"])
@pytest.mark.parametrize("semantics", list(Semantics), ids=lambda s: s.value)
def test_no_public_attribute_leads_through_the_boundary(
    semantics: Semantics, layered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, seen, given = build(semantics, layered, monkeypatch)
    with world:
        assert set(seen) == {"wasi-virtual", "app", *(["read-only"] if layered else [])}
        for name, ctx in seen.items():
            foreign = tuple(cls for other, classes in REPRESENTATIONS.items()
                            if other != name for cls in classes)
            assert doors(ctx, f"{name}.ctx", foreign) == []
        # What a walker (or a layer reading signatures) may see instead: names and types.
        wasi = seen["app"].imports["wasi"]
        assert {"descriptor", "open_at", "read"} <= set(dir(wasi))
        read = wasi["read"]
        assert isinstance(read, BoundFunc) and read.name == "read"
        assert isinstance(read.params[0], HandleParam) and read.params[0].rtype is wasi[
            "descriptor"]
        assert read.params[0].rtype.definer_name == ("read-only" if layered else "wasi-virtual")
        # The wasm client's adapter holds the exports it calls: no door there either.
        assert given[0] is not None
        client_foreign = tuple(c for classes in REPRESENTATIONS.values() for c in classes)
        assert doors(given[0], "client.wasi", client_foreign) == []


def test_the_walk_finds_a_door_when_there_is_one() -> None:
    """The walk itself works: a context that did leak an instance would be caught."""
    world = World()
    leaked: dict[str, Any] = {}

    def leaky(ctx: Context) -> Mapping[str, Func | ResourceType]:
        leaked["ctx"] = ctx
        return {}

    inst = world.instantiate("leaky", leaky)
    holder = types.SimpleNamespace(ctx=leaked["ctx"], deep={"list": [inst]}, rep=Note())
    assert sorted(doors(holder, "holder", (Note,))) == [
        "holder.deep['list'][0] -> Instance", "holder.rep -> Note"]
    assert doors(leaked["ctx"], "ctx", ()) == []
