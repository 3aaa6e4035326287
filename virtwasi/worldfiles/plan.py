"""World files: a TOML description of the instances a module runs among.

::

    semantics = "component-model"          # optional; the world's handle semantics

    [run]                                  # optional
    module = "prog.wasm"                   # relative to the world file's folder
    args = ["a"]
    env = { GREETING = "hi" }
    imports = "guard"                      # optional when only one instance can be meant

    [instances.wasi]
    kind = "virtual"
    mounts = { "/" = "mem://", "/data" = "zip::file://data.zip" }
    read_only = ["/data"]

    [instances.guard]
    kind = "read-only"
    imports = { lower = "wasi" }

:func:`load` reads and checks a whole file into a :class:`WorldPlan` before anything is
opened, so a bad file is one :class:`WorldFileError` naming the file, the table and the key.
A plan is what :class:`~virtwasi.runtime.WasiWorld` can build: one implementation, layers
stacked on it in a chain, each importing the one below as ``lower``, and the module importing
the top one. The instance kinds are :data:`KINDS`; the keys' values and the mount forms are
checked in :mod:`.keys`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from ..layers import audit_layer, quota_layer, read_only_layer
from ..storage.mounts import MountSource, anchored
from ..world import Definition, Semantics
from .keys import (
    At,
    Invalid,
    MountPlan,
    count,
    mount_table,
    path_in,
    string,
    string_list,
    string_table,
    table,
)


class WorldFileError(ValueError):
    """A world file that cannot be used; the message is one line for the user."""


Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Kind:
    """What an instance of one kind is, which keys it takes, and how it is made."""

    summary: str
    settings: Mapping[str, Callable[[Any, Path], Any]] = field(default_factory=dict)
    layer: Callable[[Settings], Definition] | None = None
    """Makes the layer's definition; ``None`` for an implementation."""
    impl: str = ""
    """The implementation's name for :class:`~virtwasi.runtime.WasiWorld`."""
    required: frozenset[str] = frozenset()
    """Settings an instance of this kind must give."""


def _log(value: Any, folder: Path) -> str:
    """An audit log: a local path (relative to the world file's folder) or fsspec URL."""
    return anchored(string(value, folder), folder)


KINDS: dict[str, Kind] = {
    "virtual": Kind("the unprivileged WASI implementation, over any storage",
                    {"mounts": mount_table, "read_only": string_list}, impl="virtual"),
    "native": Kind("the host-privileged WASI implementation, over host folders",
                   {"mounts": mount_table}, impl="native"),
    "read-only": Kind("a layer that refuses every change to the tree",
                      layer=lambda settings: read_only_layer()),
    "quota": Kind("a layer that limits the bytes and inodes of the tree below",
                  {"max_bytes": count, "max_inodes": count, "errno": string},
                  layer=lambda settings: quota_layer(**settings)),
    "audit": Kind("a layer that logs every call as a JSON line",
                  {"log": _log}, layer=lambda settings: audit_layer(settings["log"]),
                  required=frozenset({"log"})),
}


@dataclass(frozen=True)
class InstancePlan:
    """One ``[instances.NAME]`` table, checked."""

    name: str
    kind: str
    imports: dict[str, str]
    """Import name to instance name (a layer imports ``lower``)."""
    settings: dict[str, Any]
    """The kind's own keys, checked and with paths resolved."""
    written: dict[str, Any] = field(default_factory=dict)
    """The same keys as the file wrote them, for pictures."""

    @property
    def mounts(self) -> dict[str, MountPlan]:
        mounts: dict[str, MountPlan] = self.settings.get("mounts", {})
        return mounts

    @property
    def read_only(self) -> list[str]:
        return list(self.settings.get("read_only", []))


class WorldOptions(TypedDict):
    """Keyword arguments for :class:`~virtwasi.runtime.WasiWorld` (and ``Session``)."""

    mounts: Mapping[str, MountSource] | None
    read_only: Sequence[str]
    semantics: Semantics
    layers: list[tuple[str, Definition]]
    impl: str


@dataclass(frozen=True)
class WorldPlan:
    """A checked world file: what to build, and what to run in it."""

    path: Path
    semantics: Semantics
    chain: tuple[InstancePlan, ...]
    """The instance the module imports first, the implementation last."""
    module: Path | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def implementation(self) -> InstancePlan:
        return self.chain[-1]

    def world_options(self, semantics: Semantics | str | None = None, *,
                      logs: bool = True) -> WorldOptions:
        """What builds this world; each call makes fresh layer definitions. ``logs=False``
        sends audit logs nowhere, for a world built only to be looked at."""
        impl = self.implementation
        mounts = impl.mounts
        return WorldOptions(
            mounts={guest: plan.source for guest, plan in mounts.items()} if mounts else None,
            read_only=impl.read_only,
            semantics=Semantics(semantics or self.semantics),
            layers=[(layer.name, _layer_definition(layer, logs))
                    for layer in reversed(self.chain[:-1])],
            impl=KINDS[impl.kind].impl,
        )


def _layer_definition(layer: InstancePlan, logs: bool) -> Definition:
    make = KINDS[layer.kind].layer
    assert make is not None  # checked by load: only the implementation has no layer
    settings = layer.settings if logs or "log" not in layer.settings else {
        **layer.settings, "log": os.devnull}
    return make(settings)


def load(path: str | Path) -> WorldPlan:
    """The world file at ``path``, read and checked (see the module doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorldFileError(f"no such world file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorldFileError(f"{path}: cannot read it: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorldFileError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise WorldFileError(f"{path}: arrays or tables nested too deep to read") from None
    try:
        return _plan(path, data)
    except Invalid as exc:
        raise WorldFileError(f"{path}: {exc}") from None
    except RecursionError:
        raise WorldFileError(f"{path}: values nested too deep to check") from None


def _plan(path: Path, data: dict[str, Any]) -> WorldPlan:
    folder = path.resolve().parent
    top = At("", data)
    top.only({"semantics", "run", "instances"})
    semantics = top.get("semantics", string, folder, default="component-model")
    if semantics not in {s.value for s in Semantics}:
        raise top.invalid("semantics", f"unknown semantics {semantics!r} (there are: "
                          f"{', '.join(s.value for s in Semantics)})")
    tables = top.get("instances", table, folder, default={})
    if not tables:
        raise top.invalid("instances", "no instances: give at least [instances.NAME] with "
                          'kind = "virtual"')
    instances = {name: _instance(name, table, folder) for name, table in tables.items()}
    run = At("run", top.get("run", table, folder, default={}))
    run.only({"module", "args", "env", "imports"})
    module = run.get("module", path_in, folder, default=None)
    if module is not None and not module.is_file():
        raise run.invalid("module", f"no such file: {module}")
    return WorldPlan(
        path=path,
        semantics=Semantics(semantics),
        chain=_chain(instances, run),
        module=module,
        args=tuple(run.get("args", string_list, folder, default=[])),
        env=run.get("env", string_table, folder, default={}),
    )


def _instance(name: str, table: Any, folder: Path) -> InstancePlan:
    at = At(f"instances.{_bare(name)}", table if isinstance(table, dict) else {})
    if not isinstance(table, dict):
        raise at.invalid(None, "expected a table")
    kind = at.get("kind", string, folder, default=None)
    if kind is None:
        raise at.invalid("kind", f"missing (one of: {', '.join(KINDS)})")
    if kind not in KINDS:
        raise at.invalid("kind", f"unknown kind {kind!r} (there are: {', '.join(KINDS)})")
    spec = KINDS[kind]
    at.only({"kind", *spec.settings, *({"imports"} if spec.layer else set())})
    imports = at.get("imports", string_table, folder, default={})
    if spec.layer and set(imports) != {"lower"}:
        raise at.invalid("imports", f'a {kind} layer imports one instance, as lower: '
                         'imports = { lower = "NAME" }')
    settings = {key: at.get(key, check, folder) for key, check in spec.settings.items()
                if key in table or key in spec.required}
    for guest in settings.get("read_only", []):
        if guest not in settings.get("mounts", {"/": None}):
            raise at.invalid("read_only", f"nothing is mounted at {guest}")
    if spec.layer is not None:
        try:  # the layer checks its own settings (a sink it could not write, say) up front
            spec.layer(settings)
        except ValueError as exc:
            raise at.invalid(None, str(exc)) from None
    return InstancePlan(name, kind, imports, settings,
                        {key: table[key] for key in spec.settings if key in table})


def _bare(name: str) -> str:
    """``name`` as a TOML key, quoted unless it is a bare key."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _chain(instances: dict[str, InstancePlan], run: At) -> tuple[InstancePlan, ...]:
    """The instances from the module's import down to the implementation, or why not."""
    importers: dict[str, str] = {}
    for inst in instances.values():
        at = f"[instances.{_bare(inst.name)}] imports.lower"
        for target in inst.imports.values():
            if target not in instances:
                raise Invalid(f"{at}: no instance named {target!r} (there are: "
                              f"{', '.join(instances)})")
            if target in importers:
                raise Invalid(f"{at}: {target!r} is already imported by {importers[target]!r}; "
                              "layers stack in one chain, each on its own lower instance")
            importers[target] = inst.name
    for inst in instances.values():
        _check_no_cycle(inst, instances)
    impls = [i.name for i in instances.values() if not KINDS[i.kind].layer]
    if len(impls) != 1:
        found = f"{len(impls)} ({', '.join(impls)})" if impls else "none"
        raise Invalid(f"[instances] one instance must be an implementation (virtual or "
                      f"native) for the layers to stack on; found {found}")
    tops = [name for name in instances if name not in importers]
    top = run.get("imports", string, Path(), default=None)
    if top is None and len(tops) > 1:
        raise run.invalid("imports", f"missing: which instance does the module import? "
                          f"(one of: {', '.join(tops)})")
    top = top or tops[0]
    if top not in instances:
        raise run.invalid("imports", f"no instance named {top!r} (there are: "
                          f"{', '.join(instances)})")
    chain = [instances[top]]
    while chain[-1].imports:
        chain.append(instances[chain[-1].imports["lower"]])
    stray = [name for name in instances if instances[name] not in chain]
    if stray:
        path = " -> ".join(i.name for i in chain)
        raise Invalid(f"[instances.{_bare(stray[0])}] is not on the chain the module imports "
                      f"({path}); a world runs one chain of layers on one implementation")
    return tuple(chain)


def _check_no_cycle(start: InstancePlan, instances: dict[str, InstancePlan]) -> None:
    seen = [start.name]
    inst = start
    while inst.imports:
        inst = instances[inst.imports["lower"]]
        if inst.name in seen:
            cycle = " -> ".join([*seen[seen.index(inst.name):], inst.name])
            raise Invalid(f"[instances.{_bare(start.name)}] imports.lower: a cycle: {cycle}")
        seen.append(inst.name)
