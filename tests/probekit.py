"""Scripted probes: a module that calls imports with raw arguments and reports every answer.

A probe is a list of calls, each ``(import name, raw arguments)``. The module makes them in
order, keeps each errno as one byte, then writes those bytes and any memory regions asked
for to stdout and exits 0, so that two runtimes can be compared on their stdout alone. A
trap ends the probe with exit code 134 and no output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import wasmtime
from conftest import load_adapter

from virtwasi.compare.result import RunResult
from virtwasi.wasi.abi import IMPORTS

PAGES = 2
RESULTS = 120_000  # one errno byte per call
IOVEC = 126_000  # scratch for the final writes
Call = tuple[str, tuple[int, ...]]


def _wasm_type(kind: str) -> str:
    return "i64" if kind in ("u64", "i64") else "i32"


def _escape(raw: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in raw)


def script(calls: Sequence[Call], data: Mapping[int, bytes] | None = None,
           dumps: Sequence[tuple[int, int]] = ()) -> bytes:
    """The module for ``calls``; ``data`` is placed in memory first, ``dumps`` are the
    (address, length) regions printed after the errnos."""
    names = sorted({name for name, _ in calls} | {"fd_write"})
    imports = []
    for name in names:
        params = " ".join(_wasm_type(k) for k in IMPORTS[name])
        result = "" if name == "proc_exit" else "(result i32)"
        imports.append(f'(import "wasi_snapshot_preview1" "{name}" '
                       f"(func ${name} (param {params}) {result}))")
    body = []
    for i, (name, args) in enumerate(calls):
        consts = " ".join(f"({_wasm_type(k)}.const {a})"
                          for k, a in zip(IMPORTS[name], args, strict=True))
        call = f"(call ${name} {consts})"
        if name != "proc_exit":  # the only import without a result
            call = f"(i32.store8 (i32.const {RESULTS + i}) {call})"
        body.append(call)
    for ptr, length in [(RESULTS, len(calls)), *dumps]:
        body.append(
            f"(i32.store (i32.const {IOVEC}) (i32.const {ptr}))"
            f"(i32.store (i32.const {IOVEC + 4}) (i32.const {length}))"
            f"(drop (call $fd_write (i32.const 1) (i32.const {IOVEC}) (i32.const 1)"
            f" (i32.const {IOVEC + 8})))"
        )
    segments = [f'(data (i32.const {ptr}) "{_escape(raw)}")'
                for ptr, raw in sorted((data or {}).items())]
    return bytes(wasmtime.wat2wasm(
        "(module\n" + "\n".join(imports)
        + f'\n(memory (export "memory") {PAGES})\n' + "\n".join(segments)
        + '\n(func (export "_start")\n' + "\n".join(body) + "))"
    ))


def run_probe(runtime: str, module: bytes, root: Path, tmp: Path) -> RunResult:
    """Run a probe module on one adapter (``wasmtime_wasi``, ``virtwasi_native``...)."""
    path = tmp / f"probe-{runtime}.wasm"
    path.write_bytes(module)
    result: RunResult = load_adapter(runtime).run(path, [], root)
    return result
