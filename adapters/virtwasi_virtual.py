"""virtwasi's virtual WASI implementation, over the host folder or over memory.

``run`` serves ``root`` itself through the host-folder storage. ``run_in_memory`` copies
``root`` into a fresh in-memory tree, runs there, and writes the resulting tree back into
``root`` (emptied first), so that both leave their outcome where the caller can compare it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from virtwasi.compare.result import RunResult
from virtwasi.runtime import ImportFunc
from virtwasi.runtime import run as run_module
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import copy_tree, remove_tree


def run(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, ImportFunc]] | None = None,
) -> RunResult:
    with HostDirStorage(root) as storage:
        return run_module(module, argv, mounts={"/": storage}, env=env, stdin=stdin,
                          imports=imports)


def run_in_memory(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, ImportFunc]] | None = None,
) -> RunResult:
    memory = MemoryStorage()
    with HostDirStorage(root) as host:
        copy_tree(host, memory)
    result = run_module(module, argv, mounts={"/": memory}, env=env, stdin=stdin,
                        imports=imports)
    with HostDirStorage(root) as host:
        remove_tree(host, "")  # shutil.rmtree recurses once per level: trees may be deep
        copy_tree(memory, host)
    return result
