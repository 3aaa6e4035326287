"""Compiled modules kept on disk, so a second run of a big module skips compilation.

wasmtime can serialize a compiled module and map it back in a fraction of the compile time
(a 70 MB module: about a minute to compile, well under a second to load). Entries are keyed
by the module's SHA-256, the wasmtime version and a caller-chosen flavour naming the engine
configuration; wasmtime itself refuses an artifact built for another configuration, and such
an entry is simply compiled again and replaced.

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

import wasmtime

_WASMTIME_VERSION = version("wasmtime")


def cache_dir() -> Path | None:
    """Where compiled modules are kept, or None when caching is off."""
    configured = os.environ.get("VIRTWASI_CACHE")
    if configured == "off":
        return None
    if configured:
        return Path(configured) / "modules"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "virtwasi" / "modules"


def compile_module(engine: wasmtime.Engine, wasm: bytes | bytearray | Path | str,
                   flavor: str = "default",
                   on_compile: Callable[[int], None] | None = None) -> wasmtime.Module:
    """``wasm`` (bytes or a file) compiled for ``engine``, from the cache when possible.

    ``on_compile(size)`` is told when real compilation is about to start (it can take a
    while). Raises ``wasmtime.WasmtimeError`` for a malformed module, as compiling does."""
    data = bytes(wasm) if isinstance(wasm, bytes | bytearray) else Path(wasm).read_bytes()
    folder = cache_dir()
    if folder is None:
        if on_compile is not None:
            on_compile(len(data))
        return wasmtime.Module(engine, data)
    key = hashlib.sha256(data).hexdigest()
    entry = folder / f"{key}-wasmtime{_WASMTIME_VERSION}-{flavor}.cwasm"
    if entry.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(entry))
        except wasmtime.WasmtimeError:
            pass  # built by another configuration or truncated: compile afresh below
    if on_compile is not None:
        on_compile(len(data))
    module = wasmtime.Module(engine, data)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent run never maps a half-written artifact.
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(module.serialize())
        os.replace(tmp, entry)
    except OSError:
        pass  # an unwritable cache costs speed, never the run
    return module
