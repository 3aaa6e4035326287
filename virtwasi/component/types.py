"""The type vocabulary of a component, named as in the canonical ABI's executable spec.

A value type is a :class:`PrimValType` or an ``int``: the index of a defined type in the type
index space of the scope that holds it (the component, component type or instance type where
the type was read). Nothing is resolved across indices here; :mod:`.model` resolves them.
Core types (:class:`CoreFuncType`, :class:`ModuleType`) are the ones a component declares for
its core modules and core functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PrimValType(enum.Enum):
    BOOL = "bool"
    S8 = "s8"
    U8 = "u8"
    S16 = "s16"
    U16 = "u16"
    S32 = "s32"
    U32 = "u32"
    S64 = "s64"
    U64 = "u64"
    F32 = "f32"
    F64 = "f64"
    CHAR = "char"
    STRING = "string"


ValType = PrimValType | int
"""A primitive, or the index of a defined value type in the enclosing type index space."""


@dataclass(frozen=True)
class ListType:
    t: ValType


@dataclass(frozen=True)
class FieldType:
    label: str
    t: ValType


@dataclass(frozen=True)
class RecordType:
    fields: tuple[FieldType, ...]


@dataclass(frozen=True)
class TupleType:
    ts: tuple[ValType, ...]


@dataclass(frozen=True)
class CaseType:
    label: str
    t: ValType | None


@dataclass(frozen=True)
class VariantType:
    cases: tuple[CaseType, ...]


@dataclass(frozen=True)
class EnumType:
    labels: tuple[str, ...]


@dataclass(frozen=True)
class FlagsType:
    labels: tuple[str, ...]


@dataclass(frozen=True)
class OptionType:
    t: ValType


@dataclass(frozen=True)
class ResultType:
    ok: ValType | None
    error: ValType | None


@dataclass(frozen=True)
class OwnType:
    resource: int
    """The type index of the resource type."""


@dataclass(frozen=True)
class BorrowType:
    resource: int
    """The type index of the resource type."""


DefValType = (PrimValType | ListType | RecordType | TupleType | VariantType | EnumType
              | FlagsType | OptionType | ResultType | OwnType | BorrowType)
"""A value type defined in a type section (a primitive may be defined too)."""


@dataclass(frozen=True)
class FuncType:
    params: tuple[tuple[str, ValType], ...]
    result: ValType | None


@dataclass(frozen=True)
class ResourceType:
    """A resource type defined by this component: a fresh type at each instantiation."""

    rep: CoreValType
    """The core representation: ``i32`` (``i64`` for components with 64-bit memories)."""
    dtor: int | None
    """The core function index of the destructor, called with the representation."""


class CoreValType(enum.Enum):
    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    V128 = "v128"
    FUNCREF = "funcref"
    EXTERNREF = "externref"


@dataclass(frozen=True)
class CoreFuncType:
    params: tuple[CoreValType, ...]
    results: tuple[CoreValType, ...]


@dataclass(frozen=True)
class CoreFuncRef:
    """A core function imported or exported by a module type: its core type index."""

    type_index: int


@dataclass(frozen=True)
class CoreTableType:
    element: CoreValType
    minimum: int
    maximum: int | None


@dataclass(frozen=True)
class CoreMemoryType:
    minimum: int
    maximum: int | None
    shared: bool
    memory64: bool


@dataclass(frozen=True)
class CoreGlobalType:
    t: CoreValType
    mutable: bool


CoreExternType = CoreFuncRef | CoreTableType | CoreMemoryType | CoreGlobalType


@dataclass(frozen=True)
class CoreImportDecl:
    module: str
    field: str
    t: CoreExternType


@dataclass(frozen=True)
class CoreExportDecl:
    name: str
    t: CoreExternType


@dataclass(frozen=True)
class CoreOuterAlias:
    """A core type pulled into a module type from an enclosing scope."""

    count: int
    index: int
    target: CoreType


@dataclass(frozen=True)
class ModuleType:
    """The type of a core module: its declarations in order, and its own core type space."""

    declarations: tuple[CoreImportDecl | CoreExportDecl | CoreFuncType | CoreOuterAlias, ...]
    core_types: tuple[CoreFuncType | CoreOuterAlias, ...]

    @property
    def imports(self) -> tuple[CoreImportDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, CoreImportDecl))

    @property
    def exports(self) -> tuple[CoreExportDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, CoreExportDecl))


CoreType = CoreFuncType | ModuleType
