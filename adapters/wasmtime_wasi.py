"""The reference runtime: wasmtime's built-in WASI over a host folder preopened as ``/``.

A core module runs on its preview 1 (``WasiConfig`` with ``define_wasi``); a component on
its WASI 0.2 (``wasmtime.component`` with ``add_wasip2``), as ``wasmtime run`` does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from virtwasi.compare.result import RunResult
from virtwasi.component import WasmKind, read_component, wasm_kind
from virtwasi.engine import compile_component, compile_module

ENGINE_FLAVOR = "default"  # wasmtime's default Config, as named in the compiled-module cache


def run(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, Callable[..., Any]]] | None = None,
    read_only: bool = False,
) -> RunResult:
    """``imports`` serves non-WASI imports: module name -> function name -> callable.
    ``read_only`` preopens ``root`` without leave to change anything in it."""
    data = module.read_bytes()
    if wasm_kind(data[:8]) is WasmKind.COMPONENT:
        if imports:
            raise ValueError("imports= serves core modules only")
        return _run_component(module, data, argv, root, env=env, stdin=stdin,
                              read_only=read_only)
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
        out, err = _configure(store, Path(scratch), module.name, argv, root, env=env,
                              stdin=stdin, read_only=read_only)
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


def _run_component(module: Path, data: bytes, argv: Sequence[str], root: Path, *,
                   env: Mapping[str, str] | None, stdin: bytes,
                   read_only: bool) -> RunResult:
    """A component's ``wasi:cli/run``: exit 0 when it answers ok, 1 when it answers an
    error, the code of ``exit``, or 134 on a trap."""
    run_export = next((e.name for e in read_component(data).exports
                       if e.name.startswith("wasi:cli/run@")), None)
    if run_export is None:
        raise ValueError("the component exports no wasi:cli/run: it is not a WASI command")
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    linker.add_wasip2()
    component = compile_component(engine, module, ENGINE_FLAVOR)
    with tempfile.TemporaryDirectory(prefix="virtwasi-oracle-") as scratch:
        out, err = _configure(store, Path(scratch), module.name, argv, root, env=env,
                              stdin=stdin, read_only=read_only)
        try:
            instance = linker.instantiate(store, component)
            interface = instance.get_export_index(store, run_export)
            run_index = instance.get_export_index(store, "run", interface)
            run_func = None if run_index is None else instance.get_func(store, run_index)
            assert run_func is not None, f"{run_export} exports no run"
            answer = run_func(store)
            code = 0 if getattr(answer, "tag", "ok") == "ok" else 1
        except wasmtime.ExitTrap as exit_trap:
            code = exit_trap.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            return RunResult(134, out.read_bytes(), err.read_bytes() + str(trap).encode())
        return RunResult(code, out.read_bytes(), err.read_bytes())


def _configure(store: wasmtime.Store, scratch: Path, name: str, argv: Sequence[str],
               root: Path, *, env: Mapping[str, str] | None, stdin: bytes,
               read_only: bool) -> tuple[Path, Path]:
    """Give ``store`` wasmtime's WASI over ``root`` as ``/``, stdio as files in
    ``scratch``: the files stdout and stderr land in."""
    out, err, inp = (scratch / n for n in ("stdout", "stderr", "stdin"))
    inp.write_bytes(stdin)
    config = wasmtime.WasiConfig()
    config.argv = [name, *argv]
    config.env = sorted((env or {}).items())
    config.stdin_file = str(inp)
    config.stdout_file = str(out)
    config.stderr_file = str(err)
    config.preopen_dir(str(root), "/", fs_mutable=not read_only)
    store.set_wasi(config)
    return out, err
