"""The instance graph of a world file, read from the world itself, drawn as text.

:func:`describe` builds the world a :class:`~virtwasi.worldfiles.plan.WorldPlan` describes,
without running its module, and reads what each instance really exports: the resource types
it defines and the ones it passes on from below. :func:`render_text` draws the result for a
terminal; :func:`virtwasi.worldfiles.svg.render_svg` draws it as a picture.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from dataclasses import dataclass

from ..runtime import WasiWorld
from ..storage.base import Storage
from ..storage.fsspec_storage import FsspecStorage
from ..storage.hostdir import HostDirStorage
from ..storage.memfs import MemoryStorage
from ..storage.overlay import OverlayStorage
from ..storage.readonly import ReadOnlyStorage, is_read_only
from ..world import Instance
from .plan import KINDS, InstancePlan, WorldPlan

MODULE_IMPORT = "wasi_snapshot_preview1"
"""What an unmodified module imports; its preview 1 adapter calls the top instance."""


@dataclass(frozen=True)
class TypeChip:
    """A resource type an instance exports; ``from_instance`` names its definer when the
    instance only passes on a type defined below it."""

    name: str
    from_instance: str | None = None


@dataclass(frozen=True)
class InstanceNode:
    name: str
    kind: str
    summary: str
    types: tuple[TypeChip, ...]
    settings: tuple[str, ...]
    imports: tuple[tuple[str, str], ...]
    """(import name, instance name) pairs."""
    implementation: bool


@dataclass(frozen=True)
class MountNode:
    guest: str
    source: str
    storage: str
    read_only: bool


@dataclass(frozen=True)
class ModuleNode:
    name: str
    args: tuple[str, ...]
    imports: str

    def args_lines(self, width: int = 60) -> list[str]:
        """The arguments as a shell would take them, wrapped to ``width`` characters."""
        return textwrap.wrap(shlex.join(self.args), width, break_on_hyphens=False,
                             initial_indent="args: ", subsequent_indent="      ")


@dataclass(frozen=True)
class Graph:
    """A world as a picture sees it: the module, the instances from the top one down, and
    the implementation's mounts."""

    title: str
    semantics: str
    module: ModuleNode | None
    instances: tuple[InstanceNode, ...]
    mounts: tuple[MountNode, ...]


def describe(plan: WorldPlan) -> Graph:
    """The graph of ``plan``, from the world really built (and closed again)."""
    with WasiWorld(**plan.world_options(logs=False)) as world:
        built = dict(zip((spec.name for spec in reversed(plan.chain)), world.stack,
                         strict=False))
        names = {inst: name for name, inst in built.items()}
        nodes = tuple(_instance_node(spec, built.get(spec.name), names)
                      for spec in plan.chain)
        impl = plan.implementation
        mounts = tuple(
            MountNode(guest, impl.mounts[guest].written if guest in impl.mounts else "mem://",
                      _storage_kind(storage), is_read_only(storage))
            for guest, storage in world.mounts.items())
    module = None
    if plan.module is not None:
        module = ModuleNode(plan.module.name, plan.args, plan.chain[0].name)
    return Graph(plan.path.name, plan.semantics.value, module, nodes, mounts)


def _instance_node(spec: InstancePlan, inst: Instance | None,
                   names: dict[Instance, str]) -> InstanceNode:
    kind = KINDS[spec.kind]
    types: tuple[TypeChip, ...] = ()
    if inst is not None:
        types = tuple(
            TypeChip(rtype.name, None if inst.defines(rtype) else next(
                (name for other, name in names.items() if other.defines(rtype)),
                rtype.definer_name))
            for rtype in inst.types.values())
    settings = tuple(f"{key} = {json.dumps(value)}" for key, value in spec.written.items()
                     if key not in ("mounts", "read_only"))
    return InstanceNode(spec.name, spec.kind, kind.summary, types, settings,
                        tuple(spec.imports.items()), kind.layer is None)


def _storage_kind(storage: Storage) -> str:
    inner = storage.inner if isinstance(storage, ReadOnlyStorage) else storage
    if isinstance(inner, OverlayStorage):
        return f"overlay: {_storage_kind(inner.upper)} over {_storage_kind(inner.lower)}"
    if isinstance(inner, MemoryStorage):
        return "memory"
    if isinstance(inner, HostDirStorage):
        return "host folder"
    if isinstance(inner, FsspecStorage):
        protocol = inner.fs.protocol
        return f"fsspec {protocol if isinstance(protocol, str) else protocol[0]}"
    return getattr(inner, "kind", type(inner).__name__)


def render_text(graph: Graph) -> str:
    """The graph for a terminal: boxes stacked from the module down to the mounts."""
    lines = [f"world {graph.title} ({graph.semantics})", ""]
    boxes = [_box_lines(node) for node in graph.instances]
    # Wide enough for every body line, and for each title with its frame corner.
    width = max((len(line) + (2 if i == 0 else 0) for box in boxes
                 for i, line in enumerate(box)), default=0)
    if graph.module is not None:
        module = [graph.module.name, *graph.module.args_lines()]
        width = max(width, *(len(line) for line in module))
        lines += _frame("module", module, width, "┏━┓┃┗┛")
        lines += _arrow(f"imports {MODULE_IMPORT} = {graph.module.imports}")
    for i, (node, box) in enumerate(zip(graph.instances, boxes, strict=True)):
        lines += _frame(box[0], box[1:], width, "╭─╮│╰╯")
        for name, target in node.imports:
            lines += _arrow(f"imports {name} = {target}")
        if i == len(graph.instances) - 1:
            lines += _mount_lines(graph.mounts)
    return "\n".join(lines) + "\n"


def _box_lines(node: InstanceNode) -> list[str]:
    own = [t.name for t in node.types if t.from_instance is None]
    passed = [f"{t.name} (from {t.from_instance})" for t in node.types if t.from_instance]
    body = [node.summary]
    if own:
        body.append("defines: " + ", ".join(own))
    if passed:
        body.append("passes on: " + ", ".join(passed))
    body += node.settings
    return [f"{node.name} · {node.kind}", *body]


def _frame(title: str, body: list[str], width: int, chars: str) -> list[str]:
    tl, h, tr, v, bl, br = tuple(chars)
    head = f"{tl}{h} {title} "
    return [head + h * (width + 4 - len(head) - 1) + tr,
            *(f"{v} {line.ljust(width)} {v}" for line in body),
            bl + h * (width + 2) + br]


def _arrow(label: str) -> list[str]:
    return [f"    │ {label}", "    ▼"]


def _mount_lines(mounts: tuple[MountNode, ...]) -> list[str]:
    if not mounts:
        return []
    guest_w = max(len(m.guest) for m in mounts)
    source_w = max(len(m.source) for m in mounts)
    lines = ["    │ mounts"]
    for i, mount in enumerate(mounts):
        branch = "└──" if i == len(mounts) - 1 else "├──"
        what = mount.storage + (", read-only" if mount.read_only else "")
        lines.append(f"    {branch} {mount.guest.ljust(guest_w)}  "
                     f"{mount.source.ljust(source_w)}  ({what})")
    return lines
