"""Linking: making an instance with its imports wired to other instances' exports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .instance import Context, Definition, Instance
from .resources import ResourceType
from .trap import LinkError
from .types import Func

if TYPE_CHECKING:
    from .world import World

def link(
    world: World, name: str, definition: Definition, imports: Mapping[str, Instance],
    parent: Instance | None = None,
) -> Instance:
    """Instantiate ``definition`` as ``name`` (a child of ``parent``, if given), each import
    name bound to another instance's exports. On any failure the half-made instance is torn
    down again, so a failed instantiation leaves nothing behind."""
    for key, target in imports.items():
        if not isinstance(target, Instance) or target.world is not world:
            raise LinkError(f"import {key!r} of {name!r} is not an instance of this world")
        if target.destroyed:
            raise LinkError(f"import {key!r} of {name!r}: instance {target.name!r} is destroyed")
    inst = Instance(world, name, parent)
    world.instances.append(inst)
    try:
        exported = definition(Context(inst, imports))
        for export_name, item in exported.items():
            if isinstance(item, ResourceType):
                inst.types[export_name] = item
            elif isinstance(item, Func) and item._instance is inst:
                inst.functions[export_name] = item
            else:
                raise LinkError(
                    f"{name!r} exports {export_name!r} = {item!r}: only its own functions "
                    "(Context.func) and resource types can be exported"
                )
    except BaseException:
        world.destroy(inst)
        raise
    return inst
