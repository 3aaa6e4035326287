"""WASI 0.2 components: the binary read into a typed model (:func:`read_component`).

:func:`wasm_kind` tells a component from a core module by the preamble alone. A component
reads into a :class:`Component` whose index spaces hold each definition at its index, in
the order the binary defines them (:mod:`.model`), with types named as in the canonical ABI
(:mod:`.types`). Anything unreadable is one :class:`ComponentReadError`: a
:class:`MalformedBinary` (truncated, corrupt, an index not yet defined) with the byte offset,
or an :class:`UnsupportedFeature` naming what virtwasi does not handle yet.

Following a definition is following indices through the spaces of its scope::

    c = read_component(data)                 # a C program wrapped by the preview 1 adapter
    c.core_funcs[13]   # ResourceDrop(resource=27)
    c.types[27]        # ExportAlias(sort=Sort.TYPE, instance=13, name='directory-entry-stream')
    c.instances[13]    # Import(name='wasi:filesystem/types@0.2.12', t=ExternType(INSTANCE, 24))
    c.types[24]        # InstanceType(declarations=...), whose own spaces hold the export

Values cross between Python and core wasm by the canonical ABI (:mod:`.canonical`): a
function type is compiled once into closures that lift and lower its values, given a call's
memory, ``realloc`` and handle callbacks::

    space, at = LocalTypes(c).definition(lift.type_index)   # aliases followed
    abi = Canonical(space).func(space.scope.types[at], lift.options.encoding)
    value = abi.call(CallContext(view, realloc), core_call, [b"bytes", "text"], post_return)
"""

from .binary import (
    ComponentReadError,
    MalformedBinary,
    UnsupportedFeature,
    WasmKind,
    wasm_kind,
)
from .model import Component, Sort
from .reader import MAX_NESTING, read_component

__all__ = [
    "MAX_NESTING",
    "Component",
    "ComponentReadError",
    "MalformedBinary",
    "Sort",
    "UnsupportedFeature",
    "WasmKind",
    "read_component",
    "wasm_kind",
]
