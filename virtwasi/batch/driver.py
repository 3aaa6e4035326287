"""From a module and its inputs to a results table: what ``virtwasi map`` runs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..storage.mounts import MountError, MountSource, anchored, check_guest_path
from ..terminal.progress import Progress
from .engines import Dask, ProcessPool
from .plan import Item, Output, Plan, expand, expand_url, inputs_of
from .results import BatchResult, ItemResult, ResultsTable, done_inputs, format_of, read_table

_CORE_MODULE = b"\0asm\x01\0\0\0"


def map(  # virtwasi.map, as Python's map: one function over many inputs
    module: str | Path | bytes,
    inputs: str | Path | Iterable[str | Path],
    args: Sequence[str] = (),
    *,
    outputs: Mapping[str, str] | None = None,
    mounts: Mapping[str, MountSource] | None = None,
    read_only: Iterable[str] = (),
    input_at: str | None = "/in",
    env: Mapping[str, str] | None = None,
    program_name: str | None = None,
    timeout: float | None = None,
    fuel: int | None = None,
    max_memory: int | None = None,
    quota: tuple[int | None, int | None] | None = None,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    retries: int = 2,
    workers: int | None = None,
    client: Any = None,
    results: str | Path | None = None,
    results_format: str | None = None,
    resume: str | Path | None = None,
    keep_output: int = 4096,
    progress: bool | None = None,
) -> BatchResult:
    """Run ``module`` once per input, each run in a fresh world of its own, on a local
    process pool (``workers`` processes, one per core by default) or on the Dask cluster
    of ``client`` (a ``dask.distributed.Client``).

    ``inputs`` is a glob, a folder, an archive or one file (a URL or a host path), or a
    list of inputs taken as given. Each item sees its input alone, read-only, at
    ``input_at``/{name} (None: not served), and ``/`` is a private in-memory tree unless
    ``mounts`` covers it. ``args``, mount sources, ``env`` values and ``outputs`` (guest
    path to URL; a guest path ending in ``/`` is a folder, whose files go under the URL)
    are templates over ``{path}``, ``{name}``, ``{stem}`` and ``{index}`` (see
    :mod:`virtwasi.batch.plan`). Shared mounts are read-only; ``read_only`` adds others.
    ``timeout``, ``fuel``, ``max_memory`` and ``quota`` ((bytes, inodes)) bound each item;
    ``storage_options`` (by protocol) open the input and output URLs; a storage step that
    fails with ``EIO`` is tried again up to ``retries`` times.

    Rows go to ``results`` as items finish (JSON lines, or Parquet for a ``.parquet``
    name or ``results_format="parquet"``, with pyarrow; ``"-"``: JSON lines on stdout;
    None: only the returned :class:`BatchResult`); ``resume`` names an earlier table whose
    done items are skipped (and kept in the new one, by default itself). The stdout
    and stderr a row keeps are bounded by ``keep_output`` bytes each. A progress bar shows
    on a terminal (``progress``: True or False to decide). Ctrl-C stops the batch cleanly
    and returns what finished (``stopped``). A mistake in the arguments is a ValueError
    (:class:`~virtwasi.storage.mounts.MountError`) whose message is one line.
    """
    started = time.perf_counter()
    data, name = _module_bytes(module)
    options = {p: dict(o) for p, o in (storage_options or {}).items()}
    plan = Plan(
        program_name=program_name or name,
        args=tuple(_words(args, "args")),
        env=tuple((env or {}).items()),
        mounts=tuple((check_guest_path(g), s) for g, s in (mounts or {}).items()),
        read_only=tuple(check_guest_path(g) for g in read_only),
        input_at=None if input_at is None else check_guest_path(input_at),
        outputs=tuple(Output(g, u) for g, u in (outputs or {}).items()),
        storage_options=options, timeout=timeout, fuel=fuel, max_memory=max_memory,
        quota=quota, retries=retries, keep_output=keep_output, folder=str(Path.cwd()))
    plan.check()
    fmt = format_of(results if results is not None else resume, results_format)
    if isinstance(inputs, str | Path):
        paths = inputs_of([str(inputs)], options)
        if not paths:
            raise MountError(f"input {inputs}: nothing there")
    else:
        paths = [anchored(str(path), Path.cwd()) for path in inputs]
    items = [Item(index, path) for index, path in enumerate(paths)]
    _check_outputs(plan, items)
    digest = _prepare(data, plan, client is None)
    done = done_inputs(read_table(resume)) if resume is not None else {}
    wanted = {item.path for item in items}
    kept = [row for path, row in done.items() if path in wanted]  # in the table's order
    todo = [item for item in items if item.path not in done]
    table = ResultsTable(results if results is not None else resume, fmt, kept)
    engine = Dask(client) if client is not None else ProcessPool(workers)
    batch = BatchResult([], total=len(items), skipped=len(items) - len(todo))
    bar = Progress("map", len(todo), unit="items", force=progress)
    published: dict[str, int] = {}
    failed = 0

    def record(result: ItemResult) -> None:
        nonlocal failed
        batch.items.append(result)
        table.add(result)
        for url in result.outputs:
            if url in published and published[url] != result.index:
                batch.shared_outputs.append(url)
            published[url] = result.index
        if result.status != "ok":
            failed += 1
            bar.note = f"  {failed} failed"
        bar.advance(1)

    try:
        batch.stopped = engine.run(data, digest, plan, todo, record)
    except KeyboardInterrupt:  # between the engine's own stops: nothing more runs
        batch.stopped = True
    finally:
        table.close()
        bar.finish()
        batch.seconds = time.perf_counter() - started
    return batch


def _words(words: Sequence[str], what: str) -> list[str]:
    if isinstance(words, str | bytes):
        raise TypeError(f"{what} must be a sequence of str, not a single "
                        f"{type(words).__name__}: write [{words!r}]")
    return [str(word) for word in words]


def _module_bytes(module: str | Path | bytes) -> tuple[bytes, str]:
    """The module's bytes (WebAssembly text compiled) and argv[0]'s default: its name."""
    if isinstance(module, bytes | bytearray):
        data, name = bytes(module), "module"
    else:
        path = Path(module)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MountError(f"{module}: {exc.strerror}") from None
        name = path.name
    if not data.startswith(b"\0asm"):
        import wasmtime

        try:
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (UnicodeDecodeError, wasmtime.WasmtimeError):
            raise MountError(f"{name} is not a wasm module (neither a .wasm binary nor "
                             "WebAssembly text)") from None
    return data, name


def _prepare(data: bytes, plan: Plan, local: bool) -> str:
    """The module's digest, once it is known to be a WASI command; compiled into the
    cache here, for local workers to load rather than each compile it."""
    import signal

    import wasmtime

    from ..client import Limits, engine_flavor, make_engine, memory_problem
    from ..engine import compile_module

    digest = hashlib.sha256(data).hexdigest()
    if not data.startswith(_CORE_MODULE):
        return digest  # not a core module: each item's session says what it makes of it
    # Local workers watch for Ctrl-C, so their engines have epochs; Dask's only for a timeout.
    epochs = Limits(plan.timeout, signals=(signal.SIGINT,) if local else ()).epochs
    fuel = plan.fuel is not None
    try:
        compiled = compile_module(make_engine(epochs, fuel), data, engine_flavor(epochs, fuel))
    except wasmtime.WasmtimeError as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        raise MountError(f"{plan.program_name}: not a runnable WASI module: {first}") from None
    if not any(e.name == "_start" and isinstance(e.type, wasmtime.FuncType)
               for e in compiled.exports):
        raise MountError(f"{plan.program_name} exports no _start function: it is not a WASI "
                         "command, and a batch runs commands")
    problem = memory_problem(compiled)
    if problem:
        raise MountError(f"{plan.program_name}: {problem}")
    return digest


def _check_outputs(plan: Plan, items: Sequence[Item]) -> None:
    """Refuse outputs no item could publish, or that two items would both publish: each
    file output's URL must differ from item to item (name it with a field)."""
    for output in plan.outputs:
        if not items:
            break
        guest = expand(output.guest, items[0])
        if plan.private_tree_of(guest) is None:
            raise MountError(f"output {output.guest}: not in a tree of the item's own (a "
                             "mem:// mount, or the default /): shared mounts and the input "
                             "are read-only")
        if output.guest.endswith("/"):
            continue  # a folder: its files' names decide
        seen: dict[str, int] = {}
        for item in items:
            url = expand_url(output.url, item, plan.folder)
            if url in seen:
                raise MountError(f"output {output.guest}={output.url}: items {seen[url]} and "
                                 f"{item.index} would both publish {url}: name it with "
                                 "{stem}, {name} or {index}")
            seen[url] = item.index
