"""A component as read: its definitions in binary order, and every index space.

Each definition is a frozen dataclass. A :class:`Scope` (a :class:`Component`, a
:class:`ComponentType` or an :class:`InstanceType`) holds one tuple per sort, in the order the
binary defines the indices, so ``component.core_funcs[7]`` *is* the definition of core func 7:
a :class:`CanonLower`, a :class:`CoreExportAlias`, a resource builtin... Imports, exports and
aliases are the entries of the space of their sort, exactly as the binary counts them.

Indices inside a definition (``CanonLower.func``, ``OwnType.resource``...) refer to the
spaces of the scope that holds the definition; the reader checked that each one was defined
before it is used. An :class:`OuterAlias` also carries its ``target``, the entry it names in
the enclosing scope's space as the binary defined it (possibly an alias there, relative to
that scope). Nothing is resolved further: what an index finally means is for a consumer
that walks the scopes (instantiation), since exports of instances need instances.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .types import CoreFuncType, DefValType, FuncType, ModuleType, ResourceType


class Sort(enum.Enum):
    """The index spaces of a scope (the ``value`` sort and core tags are not supported)."""

    CORE_FUNC = "core func"
    CORE_TABLE = "core table"
    CORE_MEMORY = "core memory"
    CORE_GLOBAL = "core global"
    CORE_TYPE = "core type"
    CORE_MODULE = "core module"
    CORE_INSTANCE = "core instance"
    FUNC = "func"
    TYPE = "type"
    COMPONENT = "component"
    INSTANCE = "instance"

    # Members are singletons compared by identity: hashing by identity agrees, and runs in C
    # (the reader looks spaces up by sort for every index it reads).
    __hash__ = object.__hash__

    @property
    def is_core(self) -> bool:
        return self.value.startswith("core ")


# -- core instances ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CoreModule:
    """A core module, kept as its bytes (wasmtime compiles it)."""

    data: bytes = field(repr=False)
    offset: int
    """Where the module's own preamble starts in the file, for messages."""


@dataclass(frozen=True)
class CoreInstantiateArg:
    name: str
    instance: int
    """A core instance index: the instance that supplies the module's imports named ``name``."""


@dataclass(frozen=True)
class CoreInstantiate:
    module: int
    args: tuple[CoreInstantiateArg, ...]


@dataclass(frozen=True)
class CoreInlineExport:
    name: str
    sort: Sort
    index: int


@dataclass(frozen=True)
class CoreInlineExports:
    """A core instance made of existing core definitions, each under a name."""

    exports: tuple[CoreInlineExport, ...]


# -- component instances ----------------------------------------------------------------------

@dataclass(frozen=True)
class InstantiateArg:
    name: str
    sort: Sort
    index: int


@dataclass(frozen=True)
class Instantiate:
    component: int
    args: tuple[InstantiateArg, ...]


@dataclass(frozen=True)
class InlineExport:
    name: str
    sort: Sort
    index: int
    attributes: tuple[NameAttribute, ...] = ()


@dataclass(frozen=True)
class InlineExports:
    exports: tuple[InlineExport, ...]


# -- aliases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportAlias:
    """The export ``name`` of component instance ``instance``."""

    sort: Sort
    instance: int
    name: str


@dataclass(frozen=True)
class CoreExportAlias:
    """The export ``name`` of core instance ``instance``."""

    sort: Sort
    instance: int
    name: str


@dataclass(frozen=True)
class OuterAlias:
    """Index ``index`` of the ``sort`` space ``count`` scopes out; ``target`` is what it is."""

    sort: Sort
    count: int
    index: int
    target: Any
    """The entry of the enclosing scope's space, as defined there."""


Alias = ExportAlias | CoreExportAlias | OuterAlias


# -- canonical definitions --------------------------------------------------------------------

class StringEncoding(enum.Enum):
    UTF8 = "utf8"
    UTF16 = "utf16"
    LATIN1_UTF16 = "latin1+utf16"


@dataclass(frozen=True)
class CanonOptions:
    string_encoding: StringEncoding | None = None
    """As given in the binary; None means the default, :attr:`encoding` tells it."""
    memory: int | None = None
    """Core memory index."""
    realloc: int | None = None
    """Core func index."""
    post_return: int | None = None
    """Core func index."""

    @property
    def encoding(self) -> StringEncoding:
        return self.string_encoding or StringEncoding.UTF8


@dataclass(frozen=True)
class CanonLift:
    """A component func made of core func ``core_func``, typed by func type ``type_index``."""

    core_func: int
    options: CanonOptions
    type_index: int


@dataclass(frozen=True)
class CanonLower:
    """A core func that calls component func ``func``."""

    func: int
    options: CanonOptions


@dataclass(frozen=True)
class ResourceNew:
    resource: int
    """The type index of the resource type."""


@dataclass(frozen=True)
class ResourceDrop:
    resource: int


@dataclass(frozen=True)
class ResourceRep:
    resource: int


Canon = CanonLift | CanonLower | ResourceNew | ResourceDrop | ResourceRep
"""What a canon section defines: a func (lift) or a core func (the others)."""


# -- imports, exports and their types ---------------------------------------------------------

@dataclass(frozen=True)
class EqBound:
    """A type import or export that is type ``index``."""

    index: int


@dataclass(frozen=True)
class SubResource:
    """A type import or export that is a fresh abstract resource type."""


TypeBound = EqBound | SubResource


@dataclass(frozen=True)
class ExternType:
    """What an import or export is: a ``sort`` with its type index, or a type bound."""

    sort: Sort
    """CORE_MODULE, FUNC, TYPE, COMPONENT or INSTANCE."""
    type_index: int | None = None
    """The core type index (CORE_MODULE) or type index; None for TYPE."""
    bound: TypeBound | None = None
    """For TYPE only."""


@dataclass(frozen=True)
class NameAttribute:
    """An annotation on an import or export name (``implements``, ``versionsuffix``...)."""

    kind: str
    value: str


@dataclass(frozen=True)
class Import:
    name: str
    t: ExternType
    attributes: tuple[NameAttribute, ...] = ()


@dataclass(frozen=True)
class Export:
    """A component's export of definition ``index`` of ``sort``; a new index of that sort."""

    name: str
    sort: Sort
    index: int
    t: ExternType | None
    """The type ascribed in the binary, if any."""
    attributes: tuple[NameAttribute, ...] = ()


@dataclass(frozen=True)
class ExportDecl:
    """An export declared by a component type or instance type."""

    name: str
    t: ExternType
    attributes: tuple[NameAttribute, ...] = ()


@dataclass(frozen=True)
class CustomSection:
    name: str
    data: bytes = field(repr=False)


# -- scopes -----------------------------------------------------------------------------------

SPACE_FIELDS: dict[Sort, str] = {
    Sort.CORE_FUNC: "core_funcs", Sort.CORE_TABLE: "core_tables",
    Sort.CORE_MEMORY: "core_memories", Sort.CORE_GLOBAL: "core_globals",
    Sort.CORE_TYPE: "core_types", Sort.CORE_MODULE: "core_modules",
    Sort.CORE_INSTANCE: "core_instances", Sort.FUNC: "funcs", Sort.TYPE: "types",
    Sort.COMPONENT: "components", Sort.INSTANCE: "instances",
}


def _space() -> Any:
    return field(default=(), repr=False)


@dataclass(frozen=True, kw_only=True)
class Scope:
    """One tuple per sort: entry ``i`` is the definition of index ``i`` of that sort.

    The spaces stay out of ``repr``: the declarations or definitions show each entry once.
    """

    core_funcs: tuple[CoreExportAlias | CanonLower | ResourceNew | ResourceDrop | ResourceRep,
                      ...] = _space()
    core_tables: tuple[CoreExportAlias, ...] = _space()
    core_memories: tuple[CoreExportAlias, ...] = _space()
    core_globals: tuple[CoreExportAlias, ...] = _space()
    core_types: tuple[CoreFuncType | ModuleType | OuterAlias, ...] = _space()
    core_modules: tuple[CoreModule | Import | Export | Alias, ...] = _space()
    core_instances: tuple[CoreInstantiate | CoreInlineExports, ...] = _space()
    funcs: tuple[CanonLift | Import | Export | ExportDecl | Alias, ...] = _space()
    types: tuple[TypeDefinition | Import | Export | ExportDecl | Alias, ...] = _space()
    components: tuple[Component | Import | Export | Alias, ...] = _space()
    instances: tuple[Instantiate | InlineExports | Import | Export | ExportDecl | Alias,
                     ...] = _space()

    def space(self, sort: Sort) -> tuple[Any, ...]:
        """The index space of ``sort``."""
        spaced: tuple[Any, ...] = getattr(self, SPACE_FIELDS[sort])
        return spaced


Declaration = Any
"""A declarator of a component or instance type (core type, type, alias, import, export)."""


@dataclass(frozen=True, kw_only=True)
class ComponentType(Scope):
    declarations: tuple[Declaration, ...]

    @property
    def imports(self) -> tuple[Import, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Import))

    @property
    def exports(self) -> tuple[ExportDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, ExportDecl))


@dataclass(frozen=True, kw_only=True)
class InstanceType(Scope):
    declarations: tuple[Declaration, ...]

    @property
    def exports(self) -> tuple[ExportDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, ExportDecl))


TypeDefinition = DefValType | FuncType | ComponentType | InstanceType | ResourceType
"""What a type section defines."""


@dataclass(frozen=True, kw_only=True)
class Component(Scope):
    """A component: every definition in binary order, its imports, exports and spaces."""

    definitions: tuple[Any, ...]
    imports: tuple[Import, ...]
    exports: tuple[Export, ...]
    custom_sections: tuple[CustomSection, ...] = ()

    def export(self, name: str) -> Export:
        """The export called ``name``; KeyError if there is none."""
        for candidate in self.exports:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def import_(self, name: str) -> Import:
        """The import called ``name``; KeyError if there is none."""
        for candidate in self.imports:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def walk(self) -> list[Component]:
        """This component and every component nested in it, outermost first."""
        found: list[Component] = []
        pending: list[Component] = [self]
        while pending:
            component = pending.pop()
            found.append(component)
            pending.extend(reversed([c for c in component.definitions
                                     if isinstance(c, Component)]))
        return found

