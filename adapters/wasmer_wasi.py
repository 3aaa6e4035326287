"""Wasmer's own WASI, through the ``wasmer-sdk`` package's sandbox API.

The sandbox runs a whole module under Wasmer's WASI; it cannot host Python functions, so
``imports=`` is refused. Its filesystem is Wasmer's: the guest's only preopen is ``/``, the
sandbox root (``.app``, ``.private``, ``bin``, ``dev``, ``etc``, ``tmp``, ``usr``,
``workspace``), and wasi-libc's working directory is ``/``. The host reaches only
``/workspace``: files placed there before the run persist, and so do the guest's changes
under it. So ``root`` is copied into ``/workspace`` (regular files and directories; the
sandbox has no way in for a symlink, which is refused), the module runs, and the resulting
``/workspace`` is copied back into ``root`` (emptied first). Anything the guest writes
elsewhere lives in a private overlay and is lost with the run.

What the host cannot learn from the sandbox's filesystem API, the copy back shows plainly:
it lists a symlink as a file whose size is its target's length and cannot read it, so a
symlink comes back as a symlink to ``?wasmer-sdk cannot read link targets (N bytes)``. Times
and modes are not carried either way.

Each run happens in a child Python process, which leaves with ``os._exit`` once it has
written its result: a process that has run a module with wasmer-sdk 0.5.0 sometimes dies at
interpreter exit with glibc's "FATAL: exception not rethrown" (SIGABRT), which would take
a test session with it. A trap ends the run with exit code 134, what the guest wrote before
it, and Wasmer's message on stderr, as the wasmtime adapter does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import virtwasi
from virtwasi.compare.result import RunResult
from virtwasi.engine.cache import cache_dir

if TYPE_CHECKING:
    from wasmer_sdk import ReadableBytes, Sandbox

if importlib.util.find_spec("wasmer_sdk") is None:
    raise ImportError("the wasmer runtime needs the wasmer-sdk package: "
                      "pip install 'virtwasi[wasmer]' (or pip install wasmer-sdk)")

WORKSPACE = "/workspace"
TIMEOUT = 300.0  # seconds a run may take before Wasmer kills it (some guests hang there)
TRAP_EXIT_CODE = 134  # as the wasmtime CLI and the other adapters report a trap
UNREADABLE_LINK = "?wasmer-sdk cannot read link targets ({} bytes)"
_COMMAND_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_HOME = str(Path(virtwasi.__file__).resolve().parent.parent)  # the folder holding virtwasi

# The child: import this module (from the folder that holds this virtwasi), run the request
# in the scratch folder, and leave without interpreter exit.
_CHILD = (
    "import importlib, os, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "module = importlib.import_module('virtwasi.adapters.wasmer_wasi')\n"
    "module.serve(sys.argv[2])\n"
    "sys.stdout.flush(); sys.stderr.flush()\n"
    "os._exit(0)\n"
)


def run(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, Callable[..., Any]]] | None = None,
) -> RunResult:
    if imports:
        raise ValueError("wasmer-sdk runs a module under Wasmer's own WASI: it cannot serve "
                         "imports from Python")
    for path, kind in _walk_host(root):
        if kind != "directory" and kind != "file":
            raise ValueError(f"{path}: wasmer-sdk's sandbox cannot hold a {kind}")
    module = Path(module)
    name = module.name if _COMMAND_NAME.fullmatch(module.name) and module.name not in (
        ".", "..") else "main"
    with tempfile.TemporaryDirectory(prefix="virtwasi-wasmer-") as scratch:
        folder = Path(scratch)
        cache = cache_dir()
        request = {
            "module": str(module.resolve()),
            "name": name,
            "argv": list(argv),
            "env": dict(env or {}),
            "root": str(root.resolve()),
            "cache": str(cache.parent / "wasmer" if cache else folder / "cache"),
        }
        (folder / "request.json").write_text(json.dumps(request))
        (folder / "stdin").write_bytes(stdin)
        child = subprocess.run(
            [sys.executable, "-P", "-c", _CHILD, _HOME, scratch],
            capture_output=True, timeout=TIMEOUT + 60,
        )
        answer = folder / "result.json"
        if not answer.is_file():
            raise RuntimeError(f"the wasmer-sdk run died (exit {child.returncode}): "
                               + child.stderr.decode(errors="replace")[-2000:])
        result = json.loads(answer.read_text())
        if "error" in result:
            raise RuntimeError(f"wasmer-sdk: {result['error']}")
        return RunResult(result["exit_code"], (folder / "stdout").read_bytes(),
                         (folder / "stderr").read_bytes())


def _walk_host(root: Path) -> list[tuple[str, str]]:
    """Every entry under ``root`` (parents first) as (relative path, kind), no link followed."""
    found = []
    for parent, dirs, files in os.walk(root):
        for entry in sorted(dirs) + sorted(files):
            path = Path(parent) / entry
            mode = path.lstat().st_mode
            kind = ("directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
                    else "symlink" if stat.S_ISLNK(mode) else "special file")
            found.append((path.relative_to(root).as_posix(), kind))
        dirs[:] = [d for d in dirs if not (Path(parent) / d).is_symlink()]
    return found


# -- the child process ----------------------------------------------------------------------

def serve(scratch: str) -> None:
    """Run the request in ``scratch`` and write its result there (in the child process)."""
    folder = Path(scratch)
    request = json.loads((folder / "request.json").read_text())
    try:
        result = asyncio.run(_serve(request, folder))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    (folder / "result.json").write_text(json.dumps(result))


async def _chunks(stream: ReadableBytes | None, into: bytearray) -> None:
    if stream is not None:
        async for chunk in stream:
            into += chunk


async def _serve(request: dict[str, Any], folder: Path) -> dict[str, Any]:
    from wasmer_sdk import (
        ExitReason,
        PackageCommandDefinition,
        PackageDefinition,
        Wasmer,
        WasmerError,
    )

    root = Path(request["root"])
    # The adapter reads stdout and stderr from their pipes, whole: Wasmer need keep no copy.
    async with Wasmer(cache_root=request["cache"], output_bytes=0) as wasmer:
        package = await wasmer.packages.create(PackageDefinition(
            modules={"module": Path(request["module"]).read_bytes()},
            commands={request["name"]: PackageCommandDefinition(module="module")},
        ))
        async with await wasmer.sandboxes.create(packages=[package]) as sandbox:
            for path, kind in _walk_host(root):
                if kind == "directory":
                    await sandbox.fs.mkdir(f"{WORKSPACE}/{path}", recursive=True)
                else:
                    await sandbox.fs.write(f"{WORKSPACE}/{path}", (root / path).read_bytes())
            command = sandbox.command(package, request["argv"], cwd=WORKSPACE,
                                      env=request["env"])
            process = await command.spawn(timeout=TIMEOUT, stdin="pipe")
            out, err = bytearray(), bytearray()
            readers = asyncio.gather(_chunks(process.stdout, out), _chunks(process.stderr, err))
            if process.stdin is not None:
                try:
                    await process.stdin.write((folder / "stdin").read_bytes())
                    await process.stdin.close()
                except WasmerError as exc:  # the guest ended without reading it all
                    if "broken pipe" not in str(exc):
                        raise
            note = ""
            try:
                output = await process.wait()
                code = output.exit_code
                if output.reason is not ExitReason.EXITED:
                    note = f"wasmer: the run ended: {output.reason.value}"
                    if output.reason is ExitReason.TIMEOUT:
                        note += f" after {TIMEOUT:g} s"
                    note += "\n"
            except WasmerError as exc:  # a trap: Wasmer's message, as wasmtime's adapter
                if exc.code != "EXECUTION_ERROR":
                    raise
                code, note = TRAP_EXIT_CODE, str(exc)
            await readers
            err += note.encode()
            (folder / "stdout").write_bytes(bytes(out))
            (folder / "stderr").write_bytes(bytes(err))
            shutil.rmtree(root)
            root.mkdir()
            await _copy_back(sandbox, WORKSPACE, root)
    return {"exit_code": code}


async def _copy_back(sandbox: Sandbox, guest: str, host: Path) -> None:
    from wasmer_sdk import WasmerError

    for entry in await sandbox.fs.read_dir(guest):
        source, target = f"{guest}/{entry.name}", host / entry.name
        if entry.kind == "directory":
            target.mkdir()
            await _copy_back(sandbox, source, target)
            continue
        try:
            target.write_bytes(await sandbox.fs.read(source))
        except WasmerError as exc:
            if "not a file" not in str(exc):
                raise
            target.symlink_to(UNREADABLE_LINK.format(entry.size))
