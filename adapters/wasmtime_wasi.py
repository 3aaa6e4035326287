"""The reference runtime: wasmtime's built-in WASI over a host folder preopened as ``/``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import wasmtime

from virtwasi.compare.result import RunResult
from virtwasi.engine import compile_module

ENGINE_FLAVOR = "default"  # wasmtime's default Config, as named in the compiled-module cache


def run(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, Callable[..., Any]]] | None = None,
) -> RunResult:
    """``imports`` serves non-WASI imports: module name -> function name -> callable."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    compiled = compile_module(engine, module, ENGINE_FLAVOR)
    for imp in compiled.imports:
        fn = (imports or {}).get(imp.module, {}).get(imp.name or "")
        if fn is not None and isinstance(imp.type, wasmtime.FuncType):
            linker.define_func(imp.module, imp.name or "", imp.type, fn)
    with tempfile.TemporaryDirectory(prefix="virtwasi-oracle-") as scratch:
        out, err, inp = (Path(scratch) / name for name in ("stdout", "stderr", "stdin"))
        inp.write_bytes(stdin)
        config = wasmtime.WasiConfig()
        config.argv = [module.name, *argv]
        config.env = sorted((env or {}).items())
        config.stdin_file = str(inp)
        config.stdout_file = str(out)
        config.stderr_file = str(err)
        config.preopen_dir(str(root), "/")
        store.set_wasi(config)
        try:
            # A start function runs here, and may exit or trap like _start.
            instance = linker.instantiate(store, compiled)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
            code = 0
        except wasmtime.ExitTrap as exit_trap:
            code = exit_trap.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            return RunResult(134, out.read_bytes(), err.read_bytes() + str(trap).encode())
        return RunResult(code, out.read_bytes(), err.read_bytes())
