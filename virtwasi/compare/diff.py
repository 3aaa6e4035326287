"""Running one module on several runtimes and comparing what each produced.

Each runtime is an adapter module of :mod:`virtwasi.adapters` (the repository's ``adapters/``)
with the common run contract: the module, its arguments, environment and stdin, and a host
folder it sees as ``/``. Every runtime starts from its own copy of the same initial tree;
exit code, stdout, stderr and the final tree (kinds, contents, link targets) are compared
against the reference, wasmtime's built-in WASI. ``virtwasi diff`` and the differential
tests both use this module.
"""

from __future__ import annotations

import difflib
import importlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .. import adapters
from ..storage.hostdir import HostDirStorage
from ..storage.tree import Snapshot, copy_tree, remove_tree, snapshot
from .result import RunResult

REFERENCE = "wasmtime"
# runtime name -> (adapter module, function in it)
RUNTIMES: dict[str, tuple[str, str]] = {
    "wasmtime": ("wasmtime_wasi", "run"),
    "native": ("virtwasi_native", "run"),
    "virtual-host": ("virtwasi_virtual", "run"),
    "virtual-memory": ("virtwasi_virtual", "run_in_memory"),
    "wasmer": ("wasmer_wasi", "run"),
}
# Selected only by name: an extra package, and a guest that sees the tree at /workspace.
OPTIONAL = frozenset({"wasmer"})
DESCRIPTIONS = {
    "wasmtime": "wasmtime's built-in WASI over a host folder (the reference)",
    "native": "virtwasi's host-privileged implementation over a host folder",
    "virtual-host": "virtwasi's virtual implementation over a host folder",
    "virtual-memory": "virtwasi's virtual implementation over the in-memory default",
    "wasmer": "Wasmer's own WASI through wasmer-sdk, the tree at /workspace (optional)",
}

Prepare = Callable[[Path], None]
"""Fills a fresh host folder with a run's initial tree."""


def load_adapter(name: str) -> ModuleType:
    """The adapter module ``name`` of :mod:`virtwasi.adapters`."""
    module = f"{adapters.__name__}.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise  # the adapter is there; something it imports is not
        raise ImportError(f"no runtime adapter {name!r} in {adapters.__name__}") from None


def runner(runtime: str) -> Callable[..., RunResult]:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (there are: {', '.join(RUNTIMES)})")
    file, function = RUNTIMES[runtime]
    run: Callable[..., RunResult] = getattr(load_adapter(file), function)
    return run


def available(runtime: str) -> bool:
    """Whether ``runtime``'s adapter imports (an optional one may lack its package)."""
    try:
        runner(runtime)
    except ImportError:
        return False
    return True


def default_runtimes() -> list[str]:
    """The runtimes compared when none is named: every one but the optional ones, among
    those whose adapters import."""
    return [name for name in RUNTIMES if name not in OPTIONAL and available(name)]


@dataclass(frozen=True)
class Observation:
    """What one runtime was seen to do: the :class:`RunResult` it returned and the tree it
    left behind."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    tree: Snapshot


def copier(source: Path) -> Prepare:
    """A Prepare that copies the host folder ``source`` (symlinks as symlinks), walking it
    in a loop: shutil's copy recurses once per level, and a tree may be deeper than that."""
    def prepare(root: Path) -> None:
        with HostDirStorage(source) as tree, HostDirStorage(root) as copy:
            copy_tree(tree, copy)
    return prepare


def remove_folder(folder: Path) -> None:
    """Remove the host folder ``folder`` and all it holds, however deep (shutil.rmtree
    recurses once per level)."""
    with HostDirStorage(folder) as tree:
        remove_tree(tree, "")
    folder.rmdir()


def run_on(runtime: str, module: Path, args: Sequence[str], root: Path, *,
           env: Mapping[str, str] | None = None, stdin: bytes = b"",
           prepare: Prepare | None = None) -> Observation:
    """``module`` run on ``runtime`` with ``root`` (created here) as its ``/``."""
    root.mkdir(parents=True)
    if prepare is not None:
        prepare(root)
    result = runner(runtime)(module, list(args), root, env=dict(env or {}), stdin=stdin)
    with HostDirStorage(root) as tree:
        return Observation(result.exit_code, result.stdout, result.stderr, snapshot(tree))


@dataclass
class Comparison:
    module: Path
    args: list[str]
    observations: dict[str, Observation] = field(default_factory=dict)

    @property
    def reference(self) -> Observation:
        return self.observations[REFERENCE]

    def differing(self) -> list[str]:
        """The runtimes whose observation is not the reference's."""
        return [name for name, got in self.observations.items()
                if name != REFERENCE and got != self.reference]

    @property
    def same(self) -> bool:
        return not self.differing()


def compare(module: Path, args: Sequence[str] = (), *,
            runtimes: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
            stdin: bytes = b"", prepare: Prepare | None = None,
            workdir: Path | None = None) -> Comparison:
    """``module`` on the reference and every runtime in ``runtimes``, each from its own copy
    of the initial tree (made by ``prepare``) under ``workdir`` (a temporary folder if None).
    ``runtimes`` defaults to :func:`default_runtimes`."""
    if runtimes is None:
        runtimes = default_runtimes()
    chosen = [REFERENCE, *(r for r in runtimes if r != REFERENCE)]
    for name in chosen:
        runner(name)  # an unknown or missing runtime fails before anything runs
    comparison = Comparison(module, list(args))
    with tempfile.TemporaryDirectory(prefix="virtwasi-diff-") as scratch:
        base = workdir or Path(scratch)
        try:
            for name in chosen:
                comparison.observations[name] = run_on(name, module, args, base / name,
                                                       env=env, stdin=stdin, prepare=prepare)
        finally:
            if workdir is None:
                for tree in Path(scratch).iterdir():
                    remove_folder(tree)
    return comparison


def _lines(value: object) -> list[str]:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    if isinstance(value, dict):
        return [f"{path}: {kind} {content!r}\n" for path, (kind, content) in sorted(value.items())]
    return [f"{value}\n"]


def _fits(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return str(value)


def report(comparison: Comparison) -> str:
    """A readable report: one row per runtime and field, then a diff for each difference."""
    fields = ("exit_code", "stdout", "stderr", "tree")
    names = list(comparison.observations)
    width = max(len(n) for n in names)
    ref = comparison.reference
    out = [f"{comparison.module.name} {' '.join(comparison.args)}".rstrip(), ""]
    out.append(f"{'runtime':<{width}}  " + "  ".join(f"{f:<12}" for f in fields))
    for name in names:
        got = comparison.observations[name]
        cells = []
        for f in fields:
            value = getattr(got, f)
            mark = "" if name == REFERENCE or value == getattr(ref, f) else " *"
            cells.append(f"{_fits(value) + mark:<12}")
        out.append(f"{name:<{width}}  " + "  ".join(cells))
    differing = comparison.differing()
    if not differing:
        out += ["", f"all {len(names)} runtimes agree"]
        return "\n".join(out) + "\n"
    out += ["", f"differs from {REFERENCE}: {', '.join(differing)} (* above)"]
    for name in differing:
        got = comparison.observations[name]
        for f in fields:
            want, have = getattr(ref, f), getattr(got, f)
            if want != have:
                out.append(f"\n--- {f}: {REFERENCE} vs {name}")
                out += [line.rstrip("\n") for line in difflib.unified_diff(
                    _lines(want), _lines(have), REFERENCE, name, lineterm="\n", n=2)][2:]
    return "\n".join(out) + "\n"
