"""Compiled modules kept on disk, so a second run of a big module skips compilation.

Components compiled whole by wasmtime (as its own WASI 0.2 runs them) are kept the same way,
by :func:`compile_component`.

wasmtime can serialize a compiled module and map it back in a fraction of the compile time
(a 70 MB module: about a minute to compile, well under a second to load). Entries are keyed
by the module's SHA-256, the wasmtime version and a caller-chosen flavour naming the engine
configuration; wasmtime itself refuses an artifact built for another configuration, and such
an entry is simply compiled again and replaced.

A module given as a file is not even read when it has not changed: a small index maps the
file's identity (path, device, inode, size, modification and change times) to its hash, so
finding a 70 MB module costs one ``stat``, not reading and hashing 70 MB; any change to the
file changes its change time, and the file is read and hashed again.

The cache lives in ``$VIRTWASI_CACHE/modules`` (default ``~/.cache/virtwasi/modules``);
``VIRTWASI_CACHE=off`` turns it off. Deserializing trusts the file, so the folder must be
writable by its owner only, as a user's cache folder is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import wasmtime
import wasmtime.component as wc

from ..storage.unsaved import cache_folder

_WASMTIME_VERSION = version("wasmtime")


def cache_dir() -> Path | None:
    """Where compiled modules are kept, or None when caching is off."""
    if os.environ.get("VIRTWASI_CACHE") == "off":
        return None
    return cache_folder() / "modules"


def _identity(path: Path) -> str | None:
    """A name for the file as it is now: any write to it changes its change time."""
    try:
        st = path.stat()
    except OSError:
        return None  # reading it will say why
    seen = (f"{path.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
            f"\0{st.st_ctime_ns}")
    return hashlib.sha256(seen.encode()).hexdigest()


Compiled = TypeVar("Compiled", wasmtime.Module, wc.Component)


def _load(kind: type[Compiled], engine: wasmtime.Engine, entry: Path) -> Compiled | None:
    if not entry.is_file():
        return None
    try:
        return kind.deserialize_file(engine, str(entry))
    except wasmtime.WasmtimeError:
        return None  # built by another configuration or truncated: compile afresh


def _store(folder: Path, name: str, data: bytes) -> None:
    """Write then rename, so a concurrent run never reads a half-written entry; an
    unwritable cache costs speed, never the run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, folder / name)
    except OSError:
        pass


def compile_module(engine: wasmtime.Engine, wasm: bytes | bytearray | Path | str,
                   flavor: str = "default",
                   on_compile: Callable[[int], None] | None = None) -> wasmtime.Module:
    """``wasm`` (bytes or a file) compiled for ``engine``, from the cache when possible.

    ``on_compile(size)`` is told when real compilation is about to start (it can take a
    while). Raises ``wasmtime.WasmtimeError`` for a malformed module, as compiling does."""
    return _compiled(wasmtime.Module, engine, wasm, flavor, on_compile)


def compile_component(engine: wasmtime.Engine, wasm: bytes | bytearray | Path | str,
                      flavor: str = "default",
                      on_compile: Callable[[int], None] | None = None) -> wc.Component:
    """A whole component compiled by wasmtime, cached as :func:`compile_module` caches."""
    return _compiled(wc.Component, engine, wasm, f"{flavor}-component", on_compile)


def _compiled(kind: type[Compiled], engine: wasmtime.Engine,
              wasm: bytes | bytearray | Path | str, flavor: str,
              on_compile: Callable[[int], None] | None) -> Compiled:
    folder = cache_dir()
    suffix = f"-wasmtime{_WASMTIME_VERSION}-{flavor}"
    identity = None
    if folder is not None and not isinstance(wasm, bytes | bytearray):
        identity = _identity(Path(wasm))
        known = folder / "files" / (identity or "")
        if identity is not None and known.is_file():
            found = _load(kind, engine, folder / f"{known.read_text().strip()}{suffix}.cwasm")
            if found is not None:
                return found
    data = bytes(wasm) if isinstance(wasm, bytes | bytearray) else Path(wasm).read_bytes()
    if folder is None:
        if on_compile is not None:
            on_compile(len(data))
        return kind(engine, data)
    key = hashlib.sha256(data).hexdigest()
    compiled = _load(kind, engine, folder / f"{key}{suffix}.cwasm")
    if compiled is None:
        if on_compile is not None:
            on_compile(len(data))
        compiled = kind(engine, data)
        _store(folder, f"{key}{suffix}.cwasm", bytes(compiled.serialize()))
    if identity is not None:
        _store(folder / "files", identity, key.encode())
    return compiled
