"""A component instantiated: its core modules compiled by wasmtime and linked as it says.

A :class:`ComponentInstance` is made for one world instance (its :class:`~virtwasi.world.
Context`): every handle its core code holds is in that instance's table, and every resource
type it defines is defined by that instance, so the world's rules hold for it as for any
other instance. Its imported instances are served by :class:`~.hosting.HostInterface`\\ s
(WASI 0.2, or a user's Python); a ``canon lower`` of one of their functions becomes a raw
host function that lifts the core arguments from the caller's memory and lowers the result
back, with the fast calls the preview 1 path uses.

Core instances are made in the order the binary defines them (a core module's start
function, and the tables a later instance fills, depend on that order); everything else is
resolved when first used. What this linker does not handle is one
:class:`~.binary.UnsupportedFeature` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import wasmtime

from ..engine import HostFunc, TrapBox, compile_module, memory_view
from ..engine.raw import guest_caller, new_func
from ..world import Context, Instance, LinkError, ResourceType
from ..world.entry import require_may_leave
from .binary import UnsupportedFeature
from .canonical import Canonical, FuncABI
from .hosting import HostInterface, unversioned
from .layout import LocalTypes
from .model import (
    CanonLift,
    CanonLower,
    CanonOptions,
    Component,
    CoreExportAlias,
    CoreInlineExports,
    CoreInstantiate,
    CoreModule,
    Export,
    ExportAlias,
    ExportDecl,
    Import,
    InlineExports,
    InstanceType,
    Instantiate,
    ResourceDrop,
    ResourceNew,
    ResourceRep,
    Sort,
    StringEncoding,
    SubResource,
)
from .names import component_names
from .types import CoreValType, FuncType
from .types import ResourceType as DefinedResource
from .values import M32, M64, CallContext

_RAW = {CoreValType.I32: "u32", CoreValType.I64: "u64", CoreValType.F32: "f32",
        CoreValType.F64: "f64"}
_MASKS = {CoreValType.I32: M32, CoreValType.I64: M64}

CoreExports = dict[str, Any]
"""A core instance as its exports: wasmtime functions, memories, tables and globals."""


@dataclass(frozen=True)
class HostFunction:
    """A component-level function served by the host: its type, read in ``space``."""

    name: str
    fn: Callable[..., Any]
    canonical: Canonical
    type: FuncType

    def abi(self, encoding: StringEncoding = StringEncoding.UTF8) -> FuncABI:
        return self.canonical.func(self.type, encoding)


@dataclass(frozen=True)
class LiftedFunction:
    """A component-level function made of a core function by ``canon lift``."""

    name: str
    core: wasmtime.Func
    abi: FuncABI
    options: CanonOptions


Function = HostFunction | LiftedFunction


class _Representation:
    """A component resource's core representation: an integer, which the world must not
    read as a handle (see ``Context.resource_new``)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


class ComponentInstance:
    """``component`` instantiated in ``store`` for the world instance behind ``ctx``.

    ``inst`` is that world instance, as its embedder holds it: every call into the
    component's core code enters it by the world's rules (:meth:`entering`), and its
    ``realloc`` and post-return run with leaving forbidden.

    ``hosts`` serves the imports, by instance name with or without its version
    (``wasi:io/streams`` serves ``wasi:io/streams@0.2.3``); a missing one is a
    :class:`~virtwasi.world.LinkError` raised before any core code runs. ``box`` receives
    what ended the guest when a host function raised. :attr:`exports` are the exported
    functions by name, those of exported instances as ``instance#function``.
    """

    def __init__(self, component: Component, inst: Instance, ctx: Context,
                 store: wasmtime.Store, hosts: Mapping[str, HostInterface], box: TrapBox, *,
                 flavor: str, on_compile: Callable[[int], None] | None = None,
                 args: Mapping[str, Any] | None = None,
                 outer: LocalTypes | None = None) -> None:
        self.component = component
        self._args = args or {}
        self.inst = inst
        self.ctx = ctx
        self.store = store
        self.box = box
        self._flavor = flavor
        self._on_compile = on_compile
        self._types = LocalTypes(component, outer)
        # Compiled lifts and lowers depend on the types only: every instance of one
        # component shares them.
        self._canonical = _shared_canonicals(component)
        self._resource_types: dict[object, ResourceType] = {}
        self._core_instances: dict[int, CoreExports] = {}
        self._core_funcs: dict[int, wasmtime.Func] = {}
        self._funcs: dict[int, Function] = {}
        self._nested: dict[int, dict[str, Function]] = {}
        self.host_funcs: list[HostFunc] = []  # wasmtime holds raw pointers to these
        self.handles = HostHandles(self)
        self._hosts = self._resolve_imports(hosts)
        for index in range(len(component.core_instances)):
            self._core_instance(index)
        self.exports = self._exports()

    # -- imports -------------------------------------------------------------------------
    def _resolve_imports(self, hosts: Mapping[str, HostInterface]) -> dict[int, HostInterface]:
        by_name = {unversioned(name): host for name, host in hosts.items()}
        served: dict[int, HostInterface] = {}
        for index, entry in enumerate(self.component.instances):
            if not isinstance(entry, Import):
                continue
            if entry.name in self._args:  # a nested component's: given by its parent
                continue
            host = hosts.get(entry.name) or by_name.get(unversioned(entry.name))
            if host is None:
                raise LinkError(f"the component imports {entry.name}, which nothing provides")
            served[index] = host
            where, at = self._types.definition(entry.t.type_index or 0)
            declared = where.scope.types[at]
            if not isinstance(declared, InstanceType):
                raise LinkError(f"the import {entry.name} is not typed by an instance type")
            for decl in declared.declarations:
                if isinstance(decl, ExportDecl) and isinstance(decl.t.bound, SubResource):
                    rtype = host.resources.get(decl.name)
                    if rtype is None:
                        raise LinkError(f"the component imports the resource type "
                                        f"{decl.name!r} of {entry.name}, which its host "
                                        "does not define")
                    space, at = self._types.instance_export(index, decl.name, Sort.TYPE)
                    self._resource_types[(space, at)] = rtype
        for entry in self.component.imports:
            if entry.t.sort not in (Sort.INSTANCE, Sort.FUNC, Sort.TYPE):
                raise UnsupportedFeature(f"importing a {entry.t.sort.value} ({entry.name})")
            if entry.t.sort is not Sort.INSTANCE and entry.name not in self._args:
                raise LinkError(f"the component imports {entry.t.sort.value} {entry.name}, "
                                "which nothing provides")
        return served

    # -- core definitions ----------------------------------------------------------------
    def _core_instance(self, index: int) -> CoreExports:
        found = self._core_instances.get(index)
        if found is not None:
            return found
        entry = self.component.core_instances[index]
        if isinstance(entry, CoreInlineExports):
            found = {e.name: self._core_item(e.sort, e.index) for e in entry.exports}
        else:
            found = self._instantiate_core(entry)
        self._core_instances[index] = found
        return found

    def _instantiate_core(self, entry: CoreInstantiate) -> CoreExports:
        module_entry = self.component.core_modules[entry.module]
        if not isinstance(module_entry, CoreModule):
            raise UnsupportedFeature(f"a core module that is not defined in the component "
                                     f"({type(module_entry).__name__})")
        engine = self.store.engine
        module = compile_module(engine, module_entry.data, self._flavor, self._on_compile)
        args = {arg.name: self._core_instance(arg.instance) for arg in entry.args}
        externs = []
        for imp in module.imports:
            supplied = args.get(imp.module)
            item = None if supplied is None else supplied.get(imp.name or "")
            if item is None:
                raise LinkError(f"core module {entry.module} imports {imp.module}.{imp.name}, "
                                "which its instantiation does not supply")
            externs.append(item)
        instance = wasmtime.Instance(self.store, module, externs)
        exports = instance.exports(self.store)
        return {name: exports[name] for name in exports}

    def _core_item(self, sort: Sort, index: int) -> Any:
        if sort is Sort.CORE_FUNC:
            return self._core_func(index)
        entry = self.component.space(sort)[index]
        if not isinstance(entry, CoreExportAlias):
            raise UnsupportedFeature(f"a {sort.value} defined as {type(entry).__name__}")
        return self._core_export(entry)

    def _core_export(self, alias: CoreExportAlias) -> Any:
        found = self._core_instance(alias.instance).get(alias.name)
        if found is None:
            raise LinkError(f"core instance {alias.instance} exports nothing named "
                            f"{alias.name!r}")
        return found

    def _core_func(self, index: int) -> wasmtime.Func:
        found = self._core_funcs.get(index)
        if found is not None:
            return found
        entry = self.component.core_funcs[index]
        if isinstance(entry, CoreExportAlias):
            found = self._core_export(entry)
        elif isinstance(entry, CanonLower):
            found = self._lower(entry)
        elif isinstance(entry, ResourceNew | ResourceRep | ResourceDrop):
            found = self._resource_builtin(entry)
        else:
            raise UnsupportedFeature(f"core func {index} ({type(entry).__name__})")
        if not isinstance(found, wasmtime.Func):
            raise LinkError(f"core func {index} is not a function")
        self._core_funcs[index] = found
        return found

    def _raw(self, params: Sequence[CoreValType], results: Sequence[CoreValType],
             fn: Callable[..., Any]) -> wasmtime.Func:
        func, keep = new_func(self.store, tuple(_RAW[t] for t in params),
                              tuple(_RAW[t] for t in results), fn, self.box)
        self.host_funcs.append(keep)
        return func

    # -- component functions -------------------------------------------------------------
    def canonical(self, space: LocalTypes) -> Canonical:
        found = self._canonical.get(space)
        if found is None:
            found = self._canonical[space] = Canonical(space)
        return found

    def _func_type(self, space: LocalTypes, type_index: int) -> tuple[LocalTypes, FuncType]:
        where, at = space.definition(type_index)
        ft = where.scope.types[at]
        if not isinstance(ft, FuncType):
            raise LinkError(f"type {type_index} is not a function type")
        return where, ft

    def func(self, index: int) -> Function:
        """Component func ``index``: served by the host, or lifted from core wasm."""
        found = self._funcs.get(index)
        if found is not None:
            return found
        entry = self.component.funcs[index]
        if isinstance(entry, Export):
            found = self.func(entry.index)
        elif isinstance(entry, CanonLift):
            space, ft = self._func_type(self._types, entry.type_index)
            abi = self.canonical(space).func(ft, entry.options.encoding)
            core = self._core_func(entry.core_func)
            found = LiftedFunction(f"func {index}", core, abi, entry.options)
        elif isinstance(entry, ExportAlias):
            found = self._instance_func(entry.instance, entry.name)
        elif isinstance(entry, Import) and isinstance(self._args.get(entry.name),
                                                      HostFunction | LiftedFunction):
            found = self._args[entry.name]
        else:
            raise UnsupportedFeature(f"func {index} defined as {type(entry).__name__}")
        self._funcs[index] = found
        return found

    def _instance_func(self, instance: int, name: str) -> Function:
        entry = self.component.instances[instance]
        if isinstance(entry, Import):
            fn = self._hosts[instance].funcs.get(name)
            if fn is None:
                raise LinkError(f"{entry.name} exports no function {name!r} in its host")
            inner, at = self._types.instance_export(instance, name, Sort.FUNC)
            decl = inner.scope.funcs[at]
            assert isinstance(decl, ExportDecl)
            space, ft = self._func_type(inner, decl.t.type_index or 0)
            # The string encoding is the lowering's: chosen when it is lowered.
            return HostFunction(f"{entry.name}#{name}", fn, self.canonical(space), ft)
        if isinstance(entry, InlineExports):
            for export in entry.exports:
                if export.name == name and export.sort is Sort.FUNC:
                    return self.func(export.index)
        if isinstance(entry, Export | Instantiate):
            found = self._instance_funcs(instance).get(name)
            if found is None:
                raise LinkError(f"instance {instance} exports no function {name!r}")
            return found
        raise UnsupportedFeature(f"func {name!r} of instance {instance} "
                                 f"({type(entry).__name__})")

    def _exports(self) -> dict[str, Function]:
        exported: dict[str, Function] = {}
        for export in self.component.exports:
            if export.sort is Sort.FUNC:
                exported[export.name] = self.func(export.index)
            elif export.sort is Sort.INSTANCE:
                for name, func in self._instance_funcs(export.index).items():
                    exported[f"{export.name}#{name}"] = func
        return exported

    def _instance_funcs(self, instance: int) -> dict[str, Function]:
        entry = self.component.instances[instance]
        if isinstance(entry, Export):
            return self._instance_funcs(entry.index)
        if isinstance(entry, InlineExports):
            return {e.name: self.func(e.index) for e in entry.exports if e.sort is Sort.FUNC}
        if isinstance(entry, Instantiate):
            return self._instantiate(instance, entry)
        raise UnsupportedFeature(f"exporting instance {instance} ({type(entry).__name__})")

    def _instantiate(self, instance: int, entry: Instantiate) -> dict[str, Function]:
        """A nested component instantiated. Only one without core code of its own is
        handled: the shims that give an export its type, re-exporting what they import.
        One with core code would be a second component instance, with a table of its own,
        called across two canonical ABIs: composed components, not supported yet."""
        found = self._nested.get(instance)
        if found is not None:
            return found
        nested = self.component.components[entry.component]
        if not isinstance(nested, Component):
            raise UnsupportedFeature(f"instantiating component {entry.component} "
                                     f"({type(nested).__name__})")
        if nested.core_instances:
            raise UnsupportedFeature("composed components (a nested component with core "
                                     "code of its own)")
        args: dict[str, Any] = {}
        for arg in entry.args:
            if arg.sort is Sort.FUNC:
                args[arg.name] = self.func(arg.index)
            elif arg.sort is Sort.TYPE:
                args[arg.name] = arg.index  # a type's identity: followed through outer
            else:
                raise UnsupportedFeature(f"instantiating a component with a "
                                         f"{arg.sort.value} argument ({arg.name})")
        child = ComponentInstance(nested, self.inst, self.ctx, self.store, {}, self.box,
                                  flavor=self._flavor, on_compile=self._on_compile,
                                  args=args, outer=self._types)
        found = self._nested[instance] = dict(child.exports)
        return found

    # -- canonical options ---------------------------------------------------------------
    def call_context(self, options: CanonOptions) -> CallContext:
        """The memory and ``realloc`` ``options`` name, read when a call first needs them."""
        memory = None
        if options.memory is not None:
            entry = self.component.core_memories[options.memory]
            found = self._core_export(entry)
            if not isinstance(found, wasmtime.Memory):
                raise LinkError(f"core memory {options.memory} is not a memory")
            memory = memory_view(self.store, found)
        realloc = None
        if options.realloc is not None:
            realloc = self.leave_forbidden(self.core_caller(self._core_func(options.realloc)))
        return CallContext(memory, realloc, self.handles)

    # -- the world's rules for entering and leaving ---------------------------------------
    def entering(self) -> AbstractContextManager[None]:
        """A call into the component's core code from its embedder. A host function of the
        component calling back (its imports are the instance's own client-side code, see
        :mod:`.hosting`) calls from inside it, which the rules allow, as wasmtime does."""
        inst = self.inst
        return inst.world.entering(inst, inst if inst.active else None)

    def leave_forbidden(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call`` (a ``realloc`` or a post-return) run with the instance forbidden to
        leave: a host call, ``resource.new`` or ``resource.drop`` in it traps."""
        inst = self.inst

        def forbidden(*args: Any) -> Any:
            with inst.world.forbidding_leave(inst):
                return call(*args)

        return forbidden

    def core_caller(self, func: wasmtime.Func) -> Callable[..., Any]:
        """``func`` as a Python function of unsigned core values, giving one result (or
        None) unsigned; a trap is wasmtime's exception."""
        ft = func.type(self.store)
        return guest_caller(self.store, func, tuple(_RAW[CoreValType(str(t))] for t in ft.params),
                            tuple(_RAW[CoreValType(str(t))] for t in ft.results))

    # -- lowering ------------------------------------------------------------------------
    def _lower(self, lower: CanonLower) -> wasmtime.Func:
        target = self.func(lower.func)
        if not isinstance(target, HostFunction):
            raise UnsupportedFeature("lowering a function lifted in the same component "
                                     "(a component calling its own export)")
        abi = target.abi(lower.options.encoding)
        core = abi.core_type("lower")
        fn = target.fn
        compiled: list[Callable[[Sequence[Any]], Any]] = []
        inst, what = self.inst, f"call {target.name}"

        def lowered(*flat: Any) -> Any:
            if inst.restricted:  # trapped before, or in a realloc or a post-return
                require_may_leave(inst, what)
            if not compiled:  # the memory and the types it needs exist by the first call
                compiled.append(abi.host_call(fn, self.call_context(lower.options),
                                              self.handles.checker))
            return compiled[0](flat)

        return self._raw(core.params, core.results, lowered)

    # -- resources -----------------------------------------------------------------------
    def resource_type(self, identity: object) -> ResourceType:
        """The world's resource type behind a type of the binary (see :class:`LocalTypes`):
        an imported one is its host's; one the component defines is made, the first time,
        as a type defined by this instance."""
        found = self._resource_types.get(identity)
        if found is not None:
            return found
        space, at = identity if isinstance(identity, tuple) else (None, 0)
        if not isinstance(space, LocalTypes):
            raise UnsupportedFeature(f"resource type {identity!r}")
        defined = space.scope.types[at]
        if not isinstance(defined, DefinedResource) or space.scope is not self.component:
            raise UnsupportedFeature(f"resource type {at} of a scope this linker does not "
                                     "instantiate")
        dtor = defined.dtor
        destructor = None
        if dtor is not None:
            call_dtor = self.core_caller(self._core_func(dtor))

            def destructor(rep: _Representation) -> None:
                call_dtor(rep.value)

        found = self.ctx.resource_type(self._type_name(at), destructor)
        self._resource_types[identity] = found
        return found

    def _type_name(self, at: int) -> str:
        """The type's export name, or its name in the name section, or its index."""
        for export in self.component.exports:
            if export.sort is Sort.TYPE and export.index == at:
                return export.name
        return component_names(self.component).of(Sort.TYPE, at) or f"resource {at}"

    def _resource_builtin(self, entry: ResourceNew | ResourceRep | ResourceDrop
                          ) -> wasmtime.Func:
        identity = self._types.resource(entry.resource)
        rtype = self.resource_type(identity)
        ctx = self.ctx
        i32 = (CoreValType.I32,)
        if isinstance(entry, ResourceDrop):
            return self._raw(i32, (), lambda handle: ctx.resource_drop(rtype, handle))
        if not ctx.defines(rtype):
            kind = "resource.new" if isinstance(entry, ResourceNew) else "resource.rep"
            raise LinkError(f"{kind} of resource type {rtype.name!r}, which the component "
                            "does not define")
        if isinstance(entry, ResourceNew):
            return self._raw(i32, i32, lambda rep: ctx.resource_new(rtype,
                                                                    _Representation(rep)))

        def rep(handle: int) -> int:
            value: int = ctx.resource_rep(rtype, handle).value
            return value

        return self._raw(i32, i32, rep)


_CANONICALS: dict[int, tuple[Component, dict[LocalTypes, Canonical]]] = {}
_KEPT_COMPONENTS = 32


def _shared_canonicals(component: Component) -> dict[LocalTypes, Canonical]:
    """The compiled canonical ABI of ``component``'s type spaces, kept for the last few
    components instantiated (a batch instantiates one component many times)."""
    found = _CANONICALS.get(id(component))
    if found is None or found[0] is not component:
        if len(_CANONICALS) >= _KEPT_COMPONENTS:
            _CANONICALS.pop(next(iter(_CANONICALS)))
        found = _CANONICALS[id(component)] = (component, {})
    return found[1]


class HostHandles:
    """How handles cross the calls between a component instance and its hosts: as indices
    of the instance's own table, checked to hold a live handle of the expected type."""

    def __init__(self, instance: ComponentInstance) -> None:
        self._instance = instance

    def checker(self, resource: object) -> Callable[[int], int]:
        """The check of a handle index of ``resource``, as a function answering it."""
        instance = self._instance
        return instance.ctx.handle_checker(instance.resource_type(resource))

    def _checked(self, resource: object, index: int) -> int:
        rtype = self._instance.resource_type(resource)
        self._instance.ctx.check_handle(rtype, index)
        return index

    def lower_own(self, resource: object, value: Any) -> int:
        return self._checked(resource, value)

    def lower_borrow(self, resource: object, value: Any) -> int:
        return self._checked(resource, value)

    def lift_own(self, resource: object, index: int) -> Any:
        return self._checked(resource, index)

    def lift_borrow(self, resource: object, index: int) -> Any:
        return self._checked(resource, index)


def call_export(instance: ComponentInstance, func: Function, args: Sequence[Any]) -> Any:
    """Call ``func`` from the host with Python values; its result as a Python value."""
    if isinstance(func, HostFunction):  # an import re-exported: the host's own function
        return func.fn(*args)
    options = func.options
    cx = instance.call_context(options)
    core = instance.core_caller(func.core)
    post = (instance.leave_forbidden(instance.core_caller(
        instance._core_func(options.post_return))) if options.post_return is not None
        else None)

    def core_call(*flat: Any) -> list[Any]:
        out = core(*flat)
        return [] if out is None else list(out) if isinstance(out, list) else [out]

    with instance.entering():
        return func.abi.call(cx, core_call, list(args), post)
