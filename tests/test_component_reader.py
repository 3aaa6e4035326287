"""The component reader: real components read as wasm-tools reads them; bad ones refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from componentkit import (
    componentize,
    from_wit,
    parse_wat,
    printed,
    printed_names,
    render,
    wasm_tools,
)
from conftest import FIXTURES

from virtwasi.component import (
    MAX_NESTING,
    Component,
    ComponentReadError,
    MalformedBinary,
    UnsupportedFeature,
    WasmKind,
    read_component,
    wasm_kind,
)
from virtwasi.component.model import (
    CanonLift,
    CanonLower,
    CanonOptions,
    CoreExportAlias,
    CoreInlineExports,
    CoreModule,
    CustomSection,
    EqBound,
    Export,
    ExternType,
    Import,
    InlineExport,
    InlineExports,
    NameAttribute,
    OuterAlias,
    ResourceDrop,
    Sort,
    StringEncoding,
    SubResource,
)
from virtwasi.component.names import component_names
from virtwasi.component.types import (
    CoreFuncRef,
    CoreGlobalType,
    CoreImportDecl,
    CoreMemoryType,
    CoreValType,
    FieldType,
    ModuleType,
    PrimValType,
    RecordType,
    ResourceType,
)

KINDS = FIXTURES / "components" / "kinds.wat"
SHAPES = FIXTURES / "components" / "shapes.wit"
PROGRAMS = ["hello", "fileops", "echo", "dirs"]
PREAMBLE = b"\x00asm\x0d\x00\x01\x00"


@pytest.fixture(scope="module")
def kinds() -> bytes:
    return parse_wat(KINDS.read_text())


@pytest.fixture(scope="module", params=PROGRAMS)
def program(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A C fixture wrapped into a WASI 0.2 component by the preview 1 adapter."""
    name: str = request.param
    return componentize(FIXTURES / f"{name}.wasm", tmp_path_factory.mktemp(name) / "c.wasm")


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + leb(len(body)) + body


def section_ends(binary: bytes) -> set[int]:
    """Where each top-level section of a component ends (so a valid shorter component)."""
    ends, at = {8}, 8
    while at < len(binary):
        size, shift, at = 0, 0, at + 1
        while True:
            byte = binary[at]
            size, shift, at = size | (byte & 0x7F) << shift, shift + 7, at + 1
            if not byte & 0x80:
                break
        at += size
        ends.add(at)
    return ends


# -- modules and components told apart ---------------------------------------------------------

def test_a_core_module_is_a_module_and_a_component_a_component(kinds: bytes) -> None:
    module = (FIXTURES / "hello.wasm").read_bytes()
    assert wasm_kind(module) is WasmKind.MODULE
    assert wasm_kind(kinds) is WasmKind.COMPONENT
    with pytest.raises(MalformedBinary, match="a core module, not a component"):
        read_component(module)
    for garbage in (b"", b"\x00as", b"\x7fELF\x02\x01\x01\x00", b"\x00asm\x02\x00\x00\x00"):
        with pytest.raises(MalformedBinary):
            wasm_kind(garbage)


# -- read as wasm-tools reads ------------------------------------------------------------------

def test_every_kind_of_definition_and_type_reads_as_wasm_tools_prints_it(kinds: bytes) -> None:
    assert render(read_component(kinds)) == printed(kinds)


def test_a_real_program_as_a_component_reads_as_wasm_tools_prints_it(program: bytes) -> None:
    assert render(read_component(program)) == printed(program)


@pytest.mark.parametrize("encoding", ["utf8", "utf16", "compact-utf16"])
def test_a_world_of_every_wit_type_reads_as_wasm_tools_prints_it(
        encoding: str, tmp_path: Path) -> None:
    binary = from_wit(SHAPES, tmp_path / "shapes.wasm", encoding)
    component = read_component(binary)
    assert render(component) == printed(binary)
    # The exported resource is defined here, with its destructor; its methods are lifted
    # with the encoding asked for, and a post-return to free what they returned.
    defined = [t for t in component.types if isinstance(t, ResourceType)]
    assert len(defined) == 1 and defined[0].dtor is not None
    lifts = [f for f in component.funcs if isinstance(f, CanonLift)]
    assert lifts and all(f.options.post_return is not None for f in lifts)
    expected = {"utf8": StringEncoding.UTF8, "utf16": StringEncoding.UTF16,
                "compact-utf16": StringEncoding.LATIN1_UTF16}[encoding]
    given = {f.options.string_encoding for f in lifts} - {None}
    assert given == {expected}


def test_imports_exports_modules_and_lowers_agree_with_wasm_tools(program: bytes) -> None:
    component = read_component(program)
    wit = wasm_tools("component", "wit", stdin=program).decode()
    world = wit.split("world root {", 1)[1].split("}", 1)[0]
    assert [i.name for i in component.imports] == re.findall(r"^\s*import (\S+);", world, re.M)
    assert [e.name for e in component.exports] == re.findall(r"^\s*export (\S+);", world, re.M)
    text = "\n".join(printed(program))
    assert len(component.core_modules) == text.count("(core module (;") >= 2
    lowers = [f for f in component.core_funcs if isinstance(f, CanonLower)]
    assert len(lowers) == text.count("(canon lower") > 0
    # The adapter's own module is kept whole, ready for wasmtime.
    assert all(m.data[:8] == b"\x00asm\x01\x00\x00\x00" for m in component.core_modules
               if isinstance(m, CoreModule))


def test_the_name_section_names_what_wasm_tools_names(program: bytes) -> None:
    names = component_names(read_component(program))
    expected = printed_names(program)
    assert len(expected) > 50
    assert {(sort, index, names.of(sort, index)) for sort, index, _ in expected} == expected


def test_a_broken_name_section_keeps_the_names_before_the_break() -> None:
    names = b"\x00\x02\x01c" + b"\x01\x06\x03\x01\x00\x02t0" + b"\x01\x09\x03\x02\x00\x01"
    binary = PREAMBLE + section(0, b"\x0ecomponent-name" + names)
    found = component_names(read_component(binary))
    assert found.component == "c" and found.of(Sort.TYPE, 0) == "t0"
    assert found.of(Sort.TYPE, 1) is None


def test_each_index_names_its_definition(kinds: bytes) -> None:
    c = read_component(kinds)
    memory = 0
    assert c.core_memories[memory] == CoreExportAlias(Sort.CORE_MEMORY, 0, "mem")
    assert c.core_funcs[5] == CanonLower(
        1, CanonOptions(StringEncoding.UTF16, memory=memory, realloc=2))
    assert c.core_funcs[7] == CanonLower(  # utf8 given explicitly
        0, CanonOptions(StringEncoding.UTF8, memory=memory, realloc=2))
    assert c.core_funcs[9] == ResourceDrop(35)
    assert isinstance(c.core_instances[1], CoreInlineExports)
    assert c.funcs[2] == CanonLift(1, CanonOptions(memory=0, realloc=2, post_return=3), 30)
    assert c.funcs[2].options.encoding is StringEncoding.UTF8  # the default
    assert c.types[0] == ResourceType(CoreValType.I32, dtor=4)
    assert c.types[15] == RecordType((FieldType("a", PrimValType.U32),
                                      FieldType("b", PrimValType.STRING)))
    assert c.types[33] == Import("res", ExternType(Sort.TYPE, bound=SubResource()))
    assert c.types[34] == Import("alias", ExternType(Sort.TYPE, bound=EqBound(15)))
    assert c.export("owned") == Export("owned", Sort.TYPE, 0, None)
    assert c.types[37] is c.export("owned")  # an export is a new index of its sort
    assert c.export("lib") is c.core_modules[3]
    module_type = c.core_types[1]
    assert isinstance(module_type, ModuleType)
    assert module_type.imports == (
        CoreImportDecl("a", "f", CoreFuncRef(0)),
        CoreImportDecl("a", "m", CoreMemoryType(1, 2, shared=False, memory64=False)),
        module_type.imports[2],
        CoreImportDecl("a", "g", CoreGlobalType(CoreValType.I64, mutable=True)),
        CoreImportDecl("a", "s", CoreMemoryType(1, 2, shared=True, memory64=False)),
        CoreImportDecl("a", "w", CoreMemoryType(1, None, shared=False, memory64=True)),
    )
    assert c.import_("other").attributes == (NameAttribute("implements", "test:kinds/host"),)
    bag = c.instances[c.export("bag").index]
    assert isinstance(bag, InlineExports)
    assert bag.exports[1] == InlineExport("t", Sort.TYPE, 15, (NameAttribute("external-id", "x"),))
    # Outer aliases carry the entry they name, one or two scopes out.
    inner = c.components[1]
    assert isinstance(inner, Component)
    assert inner.types[1] == OuterAlias(Sort.TYPE, 1, 15, c.types[15])
    assert inner.core_modules[0] == OuterAlias(Sort.CORE_MODULE, 1, 0, c.core_modules[0])
    deep = inner.components[1]
    assert isinstance(deep, Component)
    far = deep.types[1]
    assert isinstance(far, OuterAlias) and far.count == 2 and far.target is c.types[15]
    walked = c.walk()
    assert len(walked) == 3 and walked[1] is inner and walked[2] is deep
    notes = [s for s in c.custom_sections if s.name == "note"]
    assert notes == [CustomSection("note", b"kept as bytes")]


def test_a_resource_is_represented_by_i32_or_with_64_bit_memories_i64() -> None:
    wide = read_component(parse_wat("(component (type (resource (rep i64))))"))
    assert wide.types == (ResourceType(CoreValType.I64, None),)
    with pytest.raises(MalformedBinary, match="at byte 12: a resource represented by f32"):
        read_component(parse_wat("(component (type (resource (rep f32))))"))


# -- refused by name ---------------------------------------------------------------------------

UNSUPPORTED = {
    "(component (type (stream u8)))": "stream types",
    "(component (type (future)))": "future types",
    "(component (type (list u8 4)))": "fixed-size list types",
    "(component (type (map string u32)))": "map types",
    "(component (type error-context))": "the error-context type",
    '(component (type (func async (param "x" u32))))': "async func types",
    "(component (core func (canon task.return)))": "canon task.return",
    "(component (core func (canon backpressure.inc)))": "canon backpressure.inc",
    "(component (core func (canon waitable-set.new)))": "canon waitable-set.new",
    "(component (core func (canon context.get i32 0)))": "canon context.get",
    '(component (import "v" (value string)))': "value imports and exports",
    "(component (core type (struct)))": "core GC types",
    "(component (core type (module (type (struct)))))": "core GC types",
    "(component (core type (module (type (sub (func))))))": "core GC types",
    "(component (core type (module (import \"a\" \"t\" (tag)))))": "core tags",
    ('(component (core module $m (func (export "f"))) (core instance $i (instantiate $m))'
     ' (type $f (func)) (func (type $f) (canon lift (core func $i "f") async)))'):
        "the async canon option",
}


@pytest.mark.parametrize("wat", UNSUPPORTED)
def test_what_is_not_supported_yet_is_refused_by_name(wat: str) -> None:
    binary = parse_wat(wat)
    with pytest.raises(UnsupportedFeature) as refused:
        read_component(binary)
    feature = UNSUPPORTED[wat]
    assert refused.value.feature.startswith(feature)
    assert refused.value.offset is not None and 8 <= refused.value.offset < len(binary)
    assert str(refused.value) == f"at byte {refused.value.offset}: {refused.value.feature} " \
        "is not supported yet"


# -- corrupt, truncated, hostile ---------------------------------------------------------------

def test_every_truncation_is_one_clear_error_unless_it_ends_a_section(kinds: bytes) -> None:
    ends = section_ends(kinds)
    read_whole = set()
    for size in range(8, len(kinds)):
        try:
            read_component(kinds[:size])
        except MalformedBinary as refused:
            assert refused.offset is not None and refused.offset <= size, refused
            assert "\n" not in str(refused)
        else:
            read_whole.add(size)
    assert read_whole == ends - {len(kinds)}


def test_every_corrupted_byte_reads_or_is_one_clear_error(kinds: bytes) -> None:
    outcomes = {"read": 0, "refused": 0}
    for at in range(8, len(kinds)):
        for value in (0x00, 0xFF):
            corrupt = kinds[:at] + bytes([value]) + kinds[at + 1:]
            try:
                read_component(corrupt)
            except ComponentReadError as refused:
                assert refused.offset is not None and 0 <= refused.offset <= len(kinds)
                outcomes["refused"] += 1
            else:
                outcomes["read"] += 1
    assert outcomes["refused"] > 0 and outcomes["read"] > 0


@pytest.mark.parametrize(("body", "message"), [
    (section(13, b""), "at byte 8: unknown section id 13"),
    (b"\x07\x80\x80\x80\x80\x80\x01", "at byte 9: section size is longer than 5 bytes"),
    (b"\x07\xff\xff\xff\xff\x7f", "at byte 9: section size does not fit 32 bits"),
    (b"\x07\x05\xff\xff\xff\xff\x0f", "at byte 10: type count 4294967295 exceeds the 0 bytes"),
    (section(10, b"\x01\x00\x05ab"), "at byte 13: unexpected end of name"),
    (section(8, b"\x01\x01\x00\x00\x00"), "at byte 13: func 0 is not defined (0 so far)"),
    (section(7, b"\x01\x70\x05"), "at byte 12: type 5 is not defined (0 so far)"),
    (section(7, b"\x01\x6e\x00"), "at byte 12: flags with no labels"),
    (section(7, b"\x01\x72\x01\x02\xff\xfe\x7f"), "at byte 13: field label is not valid UTF-8"),
    (section(7, b"\x01\x7f\x00"), "at byte 12: 1 unread bytes at the end of section"),
    (section(6, b"\x01\x03\x02\x01\x00"), "at byte 12: outer alias reaches 1 scopes out"),
    (section(9, b"\x00\x00\x00"), "at byte 8: the start section (component values) is not"),
    (section(1, b"\x00asm\x02\x00\x00\x00"), "at byte 10: a core module section without"),
])
def test_a_corrupt_binary_is_one_error_naming_the_byte(body: bytes, message: str) -> None:
    with pytest.raises(ComponentReadError) as refused:
        read_component(PREAMBLE + body)
    assert str(refused.value).startswith(message)


def test_deep_nesting_is_refused_without_recursion() -> None:
    # An instance type holding an instance type... three bytes a level, a million levels.
    levels = 1_000_000
    nested = b"\x42\x01\x01" * levels + b"\x42\x00"
    binary = PREAMBLE + section(7, b"\x01" + nested)
    with pytest.raises(MalformedBinary, match=f"nested more than {MAX_NESTING} levels deep"):
        read_component(binary)
    # Components nested in components: the same bound.
    component = PREAMBLE
    for _ in range(MAX_NESTING + 1):
        component = PREAMBLE + section(4, component)
    with pytest.raises(MalformedBinary, match="nested more than"):
        read_component(component)
    within = PREAMBLE
    for _ in range(MAX_NESTING):
        within = PREAMBLE + section(4, within)
    depth = len(read_component(within).walk())
    assert depth == MAX_NESTING + 1


def test_many_definitions_read_in_one_pass() -> None:
    count = 200_000
    binary = PREAMBLE + section(7, leb(count) + b"\x7f" * count)
    component = read_component(binary)
    assert len(component.types) == count and component.types[-1] is PrimValType.BOOL


def test_bytes_bytearray_and_memoryview_read_alike(kinds: bytes) -> None:
    component = read_component(kinds)
    assert read_component(bytearray(kinds)) == component == read_component(memoryview(kinds))
