"""What the embedder supplies for a component's imported instances: :class:`HostInterface`.

A component instance is a world instance; the code that serves its imports (WASI 0.2, or
any Python a user supplies) runs as client-side code of that instance, with its
:class:`~virtwasi.world.Context`, as the preview 1 adapter runs for a core module. So every
handle crossing a host call is an index in the component instance's own table:

- a ``borrow<T>`` or ``own<T>`` parameter reaches the host function as that index, after the
  linker checked that the table holds a live handle of ``T`` there (a trap otherwise);
- an ``own<T>`` result is an index the host function made in that table (with
  ``Context.resource_new`` for a type it defined through the context, or as the result of a
  call to another instance, such as a descriptor an implementation opened);
- the component's ``resource.drop`` of an imported type is ``Context.resource_drop`` of the
  :class:`~virtwasi.world.ResourceType` the host interface names for it, which runs that
  type's destructor where the world's rules say so.

Other values are the canonical ABI's Python values (:mod:`.canonical`): ``list<u8>`` is
``bytes``, a record a ``dict``, a variant a :class:`~.values.Variant`, a result
:class:`~.values.Ok` or :class:`~.values.Err`, an enum its case name, flags a ``set``.
A host function that wants the guest to stop raises; :class:`~.values.Trap` names a rule the
guest broke, and ``ProcExit`` (:mod:`virtwasi.wasi.common`) ends it with an exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..world import ResourceType


@dataclass(frozen=True)
class HostInterface:
    """One imported instance: ``funcs`` by their WIT export names (``get-stdout``,
    ``[method]output-stream.write``, ``[static]...``, ``[constructor]...``) and the resource
    types by their WIT names (``output-stream``)."""

    funcs: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    resources: Mapping[str, ResourceType] = field(default_factory=dict)


def unversioned(name: str) -> str:
    """An interface name without its version: ``wasi:io/streams@0.2.3`` is
    ``wasi:io/streams``. Imports of any 0.2.x version resolve to the same host interface."""
    return name.split("@", 1)[0]
