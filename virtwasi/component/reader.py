"""Reading a component binary into :mod:`.model`, one section at a time, in binary order.

Every definition is appended to the index space of its sort as it is read, and every index it
mentions is checked against the spaces as they stand at that point, so a reference to
something not (yet) defined is refused where it occurs. Nested components and component or
instance types are read by separate frames run from one loop (:func:`_drive`), so nesting
costs no Python recursion; it is still bounded (:data:`MAX_NESTING`) to keep memory in check.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Final

from .binary import (
    COMPONENT_VERSION,
    CORE_VERSION,
    MAGIC,
    ByteReader,
    MalformedBinary,
    WasmKind,
    wasm_kind,
)
from .model import (
    SPACE_FIELDS,
    CanonLift,
    CanonLower,
    CanonOptions,
    Component,
    ComponentType,
    CoreExportAlias,
    CoreInlineExport,
    CoreInlineExports,
    CoreInstantiate,
    CoreInstantiateArg,
    CoreModule,
    CustomSection,
    EqBound,
    Export,
    ExportAlias,
    ExportDecl,
    ExternType,
    Import,
    InlineExport,
    InlineExports,
    InstanceType,
    Instantiate,
    InstantiateArg,
    NameAttribute,
    OuterAlias,
    ResourceDrop,
    ResourceNew,
    ResourceRep,
    Sort,
    StringEncoding,
    SubResource,
)
from .types import (
    BorrowType,
    CaseType,
    CoreExportDecl,
    CoreExternType,
    CoreFuncRef,
    CoreFuncType,
    CoreGlobalType,
    CoreImportDecl,
    CoreMemoryType,
    CoreOuterAlias,
    CoreTableType,
    CoreValType,
    EnumType,
    FieldType,
    FlagsType,
    FuncType,
    ListType,
    ModuleType,
    OptionType,
    OwnType,
    PrimValType,
    RecordType,
    ResourceType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)

MAX_NESTING: Final = 100
"""Components and component/instance types nested deeper than this are refused."""

Frame = Generator[Any, Any, Any]
"""A reader of one nested scope: it yields the frame of a scope nested in it and is sent back
what that frame returned."""

_PRIMITIVES: Final = {
    0x7F: PrimValType.BOOL, 0x7E: PrimValType.S8, 0x7D: PrimValType.U8,
    0x7C: PrimValType.S16, 0x7B: PrimValType.U16, 0x7A: PrimValType.S32,
    0x79: PrimValType.U32, 0x78: PrimValType.S64, 0x77: PrimValType.U64,
    0x76: PrimValType.F32, 0x75: PrimValType.F64, 0x74: PrimValType.CHAR,
    0x73: PrimValType.STRING,
}
_CORE_VALTYPES: Final = {
    0x7F: CoreValType.I32, 0x7E: CoreValType.I64, 0x7D: CoreValType.F32,
    0x7C: CoreValType.F64, 0x7B: CoreValType.V128, 0x70: CoreValType.FUNCREF,
    0x6F: CoreValType.EXTERNREF,
}
_CORE_SORTS: Final = {
    0x00: Sort.CORE_FUNC, 0x01: Sort.CORE_TABLE, 0x02: Sort.CORE_MEMORY,
    0x03: Sort.CORE_GLOBAL, 0x10: Sort.CORE_TYPE, 0x11: Sort.CORE_MODULE,
    0x12: Sort.CORE_INSTANCE,
}
_SORTS: Final = {0x01: Sort.FUNC, 0x03: Sort.TYPE, 0x04: Sort.COMPONENT, 0x05: Sort.INSTANCE}
_ALL_SORTS: Final = tuple(Sort)
_EXTERN_SORTS: Final = frozenset(
    {Sort.CORE_MODULE, Sort.FUNC, Sort.TYPE, Sort.COMPONENT, Sort.INSTANCE})
_OUTER_SORTS: Final = frozenset({Sort.CORE_MODULE, Sort.CORE_TYPE, Sort.TYPE, Sort.COMPONENT})
_CORE_EXPORT_SORTS: Final = frozenset(
    {Sort.CORE_FUNC, Sort.CORE_TABLE, Sort.CORE_MEMORY, Sort.CORE_GLOBAL})

# Value types, definitions and built-ins of the async, error-context, threads and other
# proposals: named, so that a binary using one is refused by name rather than as garbage.
_UNSUPPORTED_TYPES: Final = {
    0x64: "the error-context type", 0x67: "fixed-size list types",
    0x66: "stream types", 0x65: "future types", 0x63: "map types",
    0x43: "async func types",
}
_UNSUPPORTED_CANON: Final = {
    0x05: "task.cancel", 0x06: "subtask.cancel", 0x09: "task.return",
    0x0A: "context.get", 0x0B: "context.set", 0x0C: "thread.yield", 0x0D: "subtask.drop",
    0x0E: "stream.new", 0x0F: "stream.read", 0x10: "stream.write",
    0x11: "stream.cancel-read", 0x12: "stream.cancel-write", 0x13: "stream.drop-readable",
    0x14: "stream.drop-writable", 0x15: "future.new", 0x16: "future.read",
    0x17: "future.write", 0x18: "future.cancel-read", 0x19: "future.cancel-write",
    0x1A: "future.drop-readable", 0x1B: "future.drop-writable",
    0x1C: "error-context.new", 0x1D: "error-context.debug-message",
    0x1E: "error-context.drop", 0x1F: "waitable-set.new", 0x20: "waitable-set.wait",
    0x21: "waitable-set.poll", 0x22: "waitable-set.drop", 0x23: "waitable.join",
    0x24: "backpressure.inc", 0x25: "backpressure.dec", 0x26: "thread.index",
    0x27: "thread.new-indirect", 0x28: "thread.resume-later", 0x29: "thread.suspend",
    0x2A: "thread.suspend-then-resume", 0x2B: "thread.yield-then-resume",
    0x2C: "thread.suspend-then-promote", 0x2D: "thread.yield-then-promote",
    0x40: "thread.spawn-ref", 0x41: "thread.spawn-indirect",
    0x42: "thread.available-parallelism",
}
_UNSUPPORTED_OPTIONS: Final = {
    0x06: "the async canon option", 0x07: "the callback canon option",
    0x08: "the core-type canon option", 0x09: "the gc canon option",
}


def read_component(data: bytes | bytearray | memoryview) -> Component:
    """The component in ``data``; :class:`~.binary.ComponentReadError` if it cannot be read."""
    raw = bytes(data)
    if wasm_kind(raw) is WasmKind.MODULE:
        raise MalformedBinary("a core module, not a component", 0)
    component: Component = _drive(_component(ByteReader(raw), None))
    return component


def _drive(root: Frame) -> Any:
    """Run ``root`` and every frame it nests, innermost first, without recursion."""
    stack = [root]
    sent: Any = None
    while True:
        try:
            nested = stack[-1].send(sent)
        except StopIteration as finished:
            stack.pop()
            if not stack:
                return finished.value
            sent = finished.value
        else:
            stack.append(nested)
            sent = None


class _Scope:
    """The index spaces of a scope being read, and the way out to the scopes around it."""

    def __init__(self, parent: _Scope | None, at: int) -> None:
        self.parent = parent
        self.depth: int = 0 if parent is None else parent.depth + 1
        if self.depth > MAX_NESTING:
            raise MalformedBinary(f"nested more than {MAX_NESTING} levels deep", at)
        self.spaces: dict[Sort, list[Any]] = {sort: [] for sort in _ALL_SORTS}
        self.declarations: list[Any] = []

    def add(self, sort: Sort, definition: Any) -> None:
        self.spaces[sort].append(definition)
        self.declarations.append(definition)

    def index(self, r: ByteReader, sort: Sort) -> int:
        """An index into the space of ``sort``, which must already be defined."""
        at = r.offset
        value = r.u32(f"{sort.value} index")
        defined = len(self.spaces[sort])
        if value >= defined:
            raise r.malformed(f"{sort.value} {value} is not defined ({defined} so far)", at)
        return value

    def outer(self, r: ByteReader, count: int, at: int) -> _Scope:
        scope: _Scope = self
        for _ in range(count):
            if scope.parent is None:
                raise r.malformed(f"outer alias reaches {count} scopes out, beyond the "
                                  "outermost component", at)
            scope = scope.parent
        return scope

    def fields(self) -> dict[str, Any]:
        return {SPACE_FIELDS[sort]: tuple(space) for sort, space in self.spaces.items()}


# -- components -------------------------------------------------------------------------------

_SECTION_VECTORS: Final = {
    2: "core instance", 3: "core type", 5: "instance", 6: "alias", 7: "type", 8: "canon",
    10: "import", 11: "export",
}


def _component(r: ByteReader, parent: _Scope | None) -> Frame:
    at = r.offset
    preamble = r.bytes(8, "component preamble")
    if preamble != MAGIC + COMPONENT_VERSION:
        raise r.malformed("a nested component without a component preamble", at)
    scope = _Scope(parent, at)
    imports: list[Import] = []
    exports: list[Export] = []
    customs: list[CustomSection] = []
    while not r.at_end():
        section_at = r.offset
        section_id = r.byte("section id")
        size = r.u32("section size")
        body = r.sub(size, "section")
        if section_id == 0:
            customs.append(CustomSection(body.name("custom section name"),
                                         body.bytes(body.remaining)))
        elif section_id == 1:
            scope.add(Sort.CORE_MODULE, _core_module(body))
        elif section_id == 4:
            scope.add(Sort.COMPONENT, (yield _component(body, scope)))
        elif section_id in _SECTION_VECTORS:
            for _ in range(body.count(_SECTION_VECTORS[section_id])):
                if section_id == 7:
                    scope.add(Sort.TYPE, (yield from _deftype(body, scope, in_type=False)))
                elif section_id == 10:
                    imports.append(_import(body, scope))
                elif section_id == 11:
                    exports.append(_export(body, scope))
                else:
                    _SECTION_READERS[section_id](body, scope)
        elif section_id == 9:
            raise r.unsupported("the start section (component values)", section_at)
        elif section_id == 12:
            raise r.unsupported("the value section (component values)", section_at)
        else:
            raise r.malformed(f"unknown section id {section_id}", section_at)
        body.expect_end("section")
    return Component(definitions=tuple(scope.declarations), imports=tuple(imports),
                     exports=tuple(exports), custom_sections=tuple(customs), **scope.fields())


def _core_module(r: ByteReader) -> CoreModule:
    at = r.offset
    data = r.bytes(r.remaining, "core module")
    if data[:8] != MAGIC + CORE_VERSION:
        raise r.malformed("a core module section without a core module preamble", at)
    return CoreModule(data, at)


def _core_instance(r: ByteReader, scope: _Scope) -> None:
    at = r.offset
    kind = r.byte("core instance")
    if kind == 0x00:
        module = scope.index(r, Sort.CORE_MODULE)
        args = []
        for _ in range(r.count("core instantiate argument")):
            name = r.name("argument name")
            sort_at = r.offset
            if r.byte("argument sort") != 0x12:
                raise r.malformed("a core instantiate argument that is not an instance",
                                  sort_at)
            args.append(CoreInstantiateArg(name, scope.index(r, Sort.CORE_INSTANCE)))
        scope.add(Sort.CORE_INSTANCE, CoreInstantiate(module, tuple(args)))
    elif kind == 0x01:
        exports = []
        for _ in range(r.count("core inline export")):
            name = r.name("export name")
            sort = _core_sort(r)
            if sort not in _CORE_EXPORT_SORTS:
                raise r.malformed(f"a core instance cannot export a {sort.value}")
            exports.append(CoreInlineExport(name, sort, scope.index(r, sort)))
        scope.add(Sort.CORE_INSTANCE, CoreInlineExports(tuple(exports)))
    else:
        raise r.malformed(f"unknown core instance kind {kind:#04x}", at)


def _instance(r: ByteReader, scope: _Scope) -> None:
    at = r.offset
    kind = r.byte("instance")
    if kind == 0x00:
        component = scope.index(r, Sort.COMPONENT)
        args = []
        for _ in range(r.count("instantiate argument")):
            name = r.name("argument name")
            sort = read_sort(r)
            args.append(InstantiateArg(name, sort, scope.index(r, sort)))
        scope.add(Sort.INSTANCE, Instantiate(component, tuple(args)))
    elif kind == 0x01:
        exports = []
        for _ in range(r.count("inline export")):
            name, attributes = _extern_name(r)
            sort = read_sort(r)
            exports.append(InlineExport(name, sort, scope.index(r, sort), attributes))
        scope.add(Sort.INSTANCE, InlineExports(tuple(exports)))
    else:
        raise r.malformed(f"unknown instance kind {kind:#04x}", at)


def _alias(r: ByteReader, scope: _Scope) -> None:
    scope.add(*_read_alias(r, scope))


def _read_alias(r: ByteReader, scope: _Scope) -> tuple[Sort, Any]:
    sort = read_sort(r)
    at = r.offset
    kind = r.byte("alias")
    if kind == 0x00:
        if sort.is_core and sort is not Sort.CORE_MODULE:
            raise r.malformed(f"an instance cannot export a {sort.value}", at)
        instance = scope.index(r, Sort.INSTANCE)
        return sort, ExportAlias(sort, instance, r.name("export name"))
    if kind == 0x01:
        if sort not in _CORE_EXPORT_SORTS:
            raise r.malformed(f"a core instance cannot export a {sort.value}", at)
        instance = scope.index(r, Sort.CORE_INSTANCE)
        return sort, CoreExportAlias(sort, instance, r.name("export name"))
    if kind == 0x02:
        if sort not in _OUTER_SORTS:
            raise r.malformed(f"an outer alias cannot name a {sort.value}", at)
        count = r.u32("outer alias count")
        target = scope.outer(r, count, at)
        index = target.index(r, sort)
        return sort, OuterAlias(sort, count, index, target.spaces[sort][index])
    raise r.malformed(f"unknown alias kind {kind:#04x}", at)


def _canon(r: ByteReader, scope: _Scope) -> None:
    at = r.offset
    kind = r.byte("canon")
    if kind in (0x00, 0x01):
        if r.byte("canon sort") != 0x00:
            raise r.malformed("canon lift or lower of something other than a func", r.offset - 1)
        if kind == 0x00:
            core_func = scope.index(r, Sort.CORE_FUNC)
            options = _canon_options(r, scope)
            lift = CanonLift(core_func, options, scope.index(r, Sort.TYPE))
            scope.add(Sort.FUNC, lift)
        else:
            func = scope.index(r, Sort.FUNC)
            scope.add(Sort.CORE_FUNC, CanonLower(func, _canon_options(r, scope)))
    elif kind in (0x02, 0x03, 0x04):
        builtin = {0x02: ResourceNew, 0x03: ResourceDrop, 0x04: ResourceRep}[kind]
        scope.add(Sort.CORE_FUNC, builtin(scope.index(r, Sort.TYPE)))
    elif kind in _UNSUPPORTED_CANON:
        raise r.unsupported(f"canon {_UNSUPPORTED_CANON[kind]}", at)
    else:
        raise r.malformed(f"unknown canon opcode {kind:#04x}", at)


def _canon_options(r: ByteReader, scope: _Scope) -> CanonOptions:
    found: dict[str, Any] = {}
    key: str
    value: Any
    for _ in range(r.count("canon option")):
        at = r.offset
        kind = r.byte("canon option")
        if kind <= 0x02:
            key, value = "string_encoding", (StringEncoding.UTF8, StringEncoding.UTF16,
                                             StringEncoding.LATIN1_UTF16)[kind]
        elif kind == 0x03:
            key, value = "memory", scope.index(r, Sort.CORE_MEMORY)
        elif kind in (0x04, 0x05):
            key, value = ("realloc" if kind == 0x04 else "post_return",
                          scope.index(r, Sort.CORE_FUNC))
        elif kind in _UNSUPPORTED_OPTIONS:
            raise r.unsupported(_UNSUPPORTED_OPTIONS[kind], at)
        else:
            raise r.malformed(f"unknown canon option {kind:#04x}", at)
        if key in found:
            raise r.malformed(f"canon option {key.replace('_', '-')} given twice", at)
        found[key] = value
    return CanonOptions(**found)


def _import(r: ByteReader, scope: _Scope) -> Import:
    name, attributes = _extern_name(r)
    t = _extern_type(r, scope)
    imported = Import(name, t, attributes)
    scope.add(t.sort, imported)
    return imported


def _export(r: ByteReader, scope: _Scope) -> Export:
    name, attributes = _extern_name(r)
    at = r.offset
    sort = read_sort(r)
    if sort not in _EXTERN_SORTS:
        raise r.malformed(f"a component cannot export a {sort.value}", at)
    index = scope.index(r, sort)
    t = _extern_type(r, scope) if r.flag("export type") else None
    if t is not None and t.sort is not sort:
        raise r.malformed(f"export of a {sort.value} typed as a {t.sort.value}", at)
    exported = Export(name, sort, index, t, attributes)
    scope.add(sort, exported)
    return exported


def _core_type_definition(r: ByteReader, scope: _Scope) -> None:
    scope.add(Sort.CORE_TYPE, _core_type(r, scope))


_SECTION_READERS: Final[dict[int, Callable[[ByteReader, _Scope], None]]] = {
    2: _core_instance, 3: _core_type_definition, 5: _instance, 6: _alias, 8: _canon,
}


# -- names, sorts, extern types ---------------------------------------------------------------

_ATTRIBUTES: Final = {0x00: "implements", 0x01: "versionsuffix", 0x02: "external-id"}


def _extern_name(r: ByteReader) -> tuple[str, tuple[NameAttribute, ...]]:
    at = r.offset
    kind = r.byte("name")
    if kind in (0x00, 0x01):
        return r.name(), ()
    if kind != 0x02:
        raise r.malformed(f"unknown name kind {kind:#04x}", at)
    name = r.name()
    attributes = []
    for _ in range(r.count("name attribute")):
        attribute_at = r.offset
        attribute = r.byte("name attribute")
        if attribute not in _ATTRIBUTES:
            raise r.malformed(f"unknown name attribute {attribute:#04x}", attribute_at)
        attributes.append(NameAttribute(_ATTRIBUTES[attribute], r.name()))
    return name, tuple(attributes)


def _core_sort(r: ByteReader) -> Sort:
    at = r.offset
    code = r.byte("core sort")
    if code == 0x04:
        raise r.unsupported("the core tag sort (exception handling)", at)
    if code not in _CORE_SORTS:
        raise r.malformed(f"unknown core sort {code:#04x}", at)
    return _CORE_SORTS[code]


def read_sort(r: ByteReader) -> Sort:
    at = r.offset
    code = r.byte("sort")
    if code == 0x00:
        return _core_sort(r)
    if code == 0x02:
        raise r.unsupported("the value sort (component values)", at)
    if code not in _SORTS:
        raise r.malformed(f"unknown sort {code:#04x}", at)
    return _SORTS[code]


def _extern_type(r: ByteReader, scope: _Scope) -> ExternType:
    at = r.offset
    code = r.byte("extern type")
    if code == 0x00:
        if r.byte("extern type") != 0x11:
            raise r.malformed("a core extern type other than a module", r.offset - 1)
        return ExternType(Sort.CORE_MODULE, scope.index(r, Sort.CORE_TYPE))
    if code == 0x02:
        raise r.unsupported("value imports and exports (component values)", at)
    if code == 0x03:
        bound_at = r.offset
        bound = r.byte("type bound")
        if bound == 0x00:
            return ExternType(Sort.TYPE, bound=EqBound(scope.index(r, Sort.TYPE)))
        if bound == 0x01:
            return ExternType(Sort.TYPE, bound=SubResource())
        raise r.malformed(f"unknown type bound {bound:#04x}", bound_at)
    sort = {0x01: Sort.FUNC, 0x04: Sort.COMPONENT, 0x05: Sort.INSTANCE}.get(code)
    if sort is None:
        raise r.malformed(f"unknown extern type {code:#04x}", at)
    return ExternType(sort, scope.index(r, Sort.TYPE))


# -- component types --------------------------------------------------------------------------

def _valtype(r: ByteReader, scope: _Scope) -> ValType:
    at = r.offset
    value = r.s33("value type")
    if value >= 0:
        defined = len(scope.spaces[Sort.TYPE])
        if value >= defined:
            raise r.malformed(f"type {value} is not defined ({defined} so far)", at)
        return value
    code = value + 0x80
    if code in _PRIMITIVES:
        return _PRIMITIVES[code]
    if code in _UNSUPPORTED_TYPES:
        raise r.unsupported(_UNSUPPORTED_TYPES[code], at)
    raise r.malformed(f"not a value type: {value}", at)


def _optional_valtype(r: ByteReader, scope: _Scope) -> ValType | None:
    return _valtype(r, scope) if r.flag("optional type") else None


def _labels(r: ByteReader, what: str) -> tuple[str, ...]:
    at = r.offset
    labels = tuple(r.name("label") for _ in range(r.count(what)))
    if not labels:
        raise r.malformed(f"{what} with no labels", at)
    return labels


def _deftype(r: ByteReader, scope: _Scope, *, in_type: bool) -> Frame:
    at = r.offset
    code = r.byte("type")
    if code in _PRIMITIVES:
        return _PRIMITIVES[code]
    if code == 0x72:
        fields = tuple(FieldType(r.name("field label"), _valtype(r, scope))
                       for _ in range(r.count("record field")))
        if not fields:
            raise r.malformed("a record with no fields", at)
        return RecordType(fields)
    if code == 0x71:
        return VariantType(_cases(r, scope, at))
    if code == 0x70:
        return ListType(_valtype(r, scope))
    if code == 0x6F:
        ts = tuple(_valtype(r, scope) for _ in range(r.count("tuple element")))
        if not ts:
            raise r.malformed("a tuple with no elements", at)
        return TupleType(ts)
    if code == 0x6E:
        labels = _labels(r, "flags")
        if len(labels) > 32:
            raise r.malformed(f"flags with {len(labels)} labels (at most 32)", at)
        return FlagsType(labels)
    if code == 0x6D:
        return EnumType(_labels(r, "enum"))
    if code == 0x6B:
        return OptionType(_valtype(r, scope))
    if code == 0x6A:
        ok = _optional_valtype(r, scope)
        return ResultType(ok, _optional_valtype(r, scope))
    if code in (0x69, 0x68):
        resource = scope.index(r, Sort.TYPE)
        return OwnType(resource) if code == 0x69 else BorrowType(resource)
    if code == 0x40:
        return _functype(r, scope)
    if code == 0x41:
        return (yield _type_scope(r, scope, ComponentType, at))
    if code == 0x42:
        return (yield _type_scope(r, scope, InstanceType, at))
    if code == 0x3F:
        if in_type:
            raise r.malformed("a resource type defined inside a component or instance type", at)
        rep_at = r.offset
        rep = _core_valtype(r)
        if rep not in (CoreValType.I32, CoreValType.I64):  # i64 with 64-bit memories
            raise r.malformed(f"a resource represented by {rep.value}", rep_at)
        dtor = scope.index(r, Sort.CORE_FUNC) if r.flag("resource destructor") else None
        return ResourceType(rep, dtor)
    if code in _UNSUPPORTED_TYPES:
        raise r.unsupported(_UNSUPPORTED_TYPES[code], at)
    raise r.malformed(f"unknown type opcode {code:#04x}", at)


def _cases(r: ByteReader, scope: _Scope, at: int) -> tuple[CaseType, ...]:
    cases = []
    for _ in range(r.count("variant case")):
        label = r.name("case label")
        t = _optional_valtype(r, scope)
        end_at = r.offset
        if r.byte("variant case") != 0x00:
            raise r.malformed("a variant case that refines another (no longer in the format)",
                              end_at)
        cases.append(CaseType(label, t))
    if not cases:
        raise r.malformed("a variant with no cases", at)
    return tuple(cases)


def _functype(r: ByteReader, scope: _Scope) -> FuncType:
    params = tuple((r.name("parameter name"), _valtype(r, scope))
                   for _ in range(r.count("parameter")))
    at = r.offset
    kind = r.byte("result list")
    if kind == 0x00:
        return FuncType(params, _valtype(r, scope))
    if kind == 0x01 and r.byte("result list") == 0x00:
        return FuncType(params, None)
    raise r.malformed("named results (no longer in the format)" if kind == 0x01
                      else f"unknown result list {kind:#04x}", at)


def _type_scope(r: ByteReader, parent: _Scope, kind: type[ComponentType | InstanceType],
                at: int) -> Frame:
    """The declarators of a component type or an instance type, in their own spaces."""
    scope = _Scope(parent, at)
    for _ in range(r.count("declaration")):
        decl_at = r.offset
        tag = r.byte("declaration")
        if tag == 0x03 and kind is ComponentType:
            _import(r, scope)
        elif tag == 0x00:
            scope.add(Sort.CORE_TYPE, _core_type(r, scope))
        elif tag == 0x01:
            scope.add(Sort.TYPE, (yield from _deftype(r, scope, in_type=True)))
        elif tag == 0x02:
            sort, alias = _read_alias(r, scope)
            if isinstance(alias, CoreExportAlias) or (
                    isinstance(alias, ExportAlias) and sort not in (Sort.TYPE, Sort.INSTANCE)):
                raise r.malformed(f"a type cannot alias a {sort.value} export", decl_at)
            if isinstance(alias, OuterAlias) and sort not in (Sort.TYPE, Sort.CORE_TYPE):
                raise r.malformed(f"a type cannot alias an outer {sort.value}", decl_at)
            scope.add(sort, alias)
        elif tag == 0x04:
            name, attributes = _extern_name(r)
            t = _extern_type(r, scope)
            scope.add(t.sort, ExportDecl(name, t, attributes))
        else:
            raise r.malformed(f"unknown declaration {tag:#04x}", decl_at)
    return kind(declarations=tuple(scope.declarations), **scope.fields())


# -- core types -------------------------------------------------------------------------------

def _core_valtype(r: ByteReader) -> CoreValType:
    at = r.offset
    code = r.byte("core value type")
    if code in _CORE_VALTYPES:
        return _CORE_VALTYPES[code]
    if code in (0x63, 0x64) or 0x69 <= code <= 0x74:
        raise r.unsupported("core reference types other than funcref and externref (GC)", at)
    raise r.malformed(f"unknown core value type {code:#04x}", at)


def _core_type(r: ByteReader, scope: _Scope) -> CoreFuncType | ModuleType:
    at = r.offset
    code = r.byte("core type")
    if code == 0x60:
        return _core_functype(r)
    if code == 0x50:
        return _module_type(r, scope)
    if code in (0x00, 0x4E, 0x4F, 0x5E, 0x5F):
        raise r.unsupported("core GC types (rec, sub, struct, array)", at)
    raise r.malformed(f"unknown core type opcode {code:#04x}", at)


def _core_functype(r: ByteReader) -> CoreFuncType:
    params = tuple(_core_valtype(r) for _ in range(r.count("core parameter")))
    results = tuple(_core_valtype(r) for _ in range(r.count("core result")))
    return CoreFuncType(params, results)


def _module_type(r: ByteReader, parent: _Scope) -> ModuleType:
    # A module type has its own core type space; its outer aliases count it as scope 0.
    scope = _Scope(parent, r.offset)
    for _ in range(r.count("module declaration")):
        at = r.offset
        tag = r.byte("module declaration")
        if tag == 0x00:
            scope.declarations.append(CoreImportDecl(
                r.name("import module"), r.name("import field"), _core_extern(r, scope)))
        elif tag == 0x01:
            # Here 0x50 is a GC subtype, not a module type: module types do not nest.
            if r.peek("core type") == 0x50:
                raise r.unsupported("core GC types (rec, sub, struct, array)")
            scope.add(Sort.CORE_TYPE, _core_type(r, scope))
        elif tag == 0x02:
            if r.byte("alias sort") != 0x10 or r.byte("alias kind") != 0x01:
                raise r.malformed("a module type may only alias outer core types", at)
            count = r.u32("outer alias count")
            target = scope.outer(r, count, at)
            index = target.index(r, Sort.CORE_TYPE)
            scope.add(Sort.CORE_TYPE,
                      CoreOuterAlias(count, index, target.spaces[Sort.CORE_TYPE][index]))
        elif tag == 0x03:
            scope.declarations.append(CoreExportDecl(r.name("export name"),
                                                     _core_extern(r, scope)))
        else:
            raise r.malformed(f"unknown module declaration {tag:#04x}", at)
    return ModuleType(tuple(scope.declarations), tuple(scope.spaces[Sort.CORE_TYPE]))


def _limits(r: ByteReader, what: str, *, memory: bool) -> tuple[int, int | None, bool, bool]:
    at = r.offset
    flags = r.byte(f"{what} limits")
    allowed = 0x07 if memory else 0x01
    if flags & ~allowed:
        if memory and flags & 0x08:
            raise r.unsupported("custom page sizes", at)
        raise r.unsupported(f"{what} limits flags {flags:#04x}", at)
    wide = bool(flags & 0x04)
    read = r.u64 if wide else r.u32
    minimum = read(f"{what} minimum")
    maximum = read(f"{what} maximum") if flags & 0x01 else None
    return minimum, maximum, bool(flags & 0x02), wide


def _core_extern(r: ByteReader, scope: _Scope) -> CoreExternType:
    at = r.offset
    code = r.byte("core extern type")
    if code == 0x00:
        return CoreFuncRef(scope.index(r, Sort.CORE_TYPE))
    if code == 0x01:
        element = _core_valtype(r)
        if element not in (CoreValType.FUNCREF, CoreValType.EXTERNREF):
            raise r.malformed("a table of a value type that is not a reference", at)
        minimum, maximum, _, _ = _limits(r, "table", memory=False)
        return CoreTableType(element, minimum, maximum)
    if code == 0x02:
        return CoreMemoryType(*_limits(r, "memory", memory=True))
    if code == 0x03:
        t = _core_valtype(r)
        return CoreGlobalType(t, r.flag("global mutability"))
    if code == 0x04:
        raise r.unsupported("core tags (exception handling)", at)
    raise r.malformed(f"unknown core extern type {code:#04x}", at)
