"""The results table of a batch: one row per item that finished, and its summary.

A row says what became of one item: ``status`` ``ok`` (the guest exited 0 and every output
was stored), ``failed`` (the guest exited non-zero, trapped or was stopped by a limit:
``exit_code`` says which, as ``virtwasi run`` would exit; or it exited 0 without writing an
output) or ``error`` (virtwasi could not run it, or could not store its outputs: ``error``
says why); the ``outputs`` it published, its stdout and stderr (kept up to a bound, with
their full sizes), the storage ``retries`` it needed, its wall-clock ``seconds`` and the
``worker`` that ran it. An item stopped before it finished (Ctrl-C) has no row: it did not
finish.

The table is JSON lines, one row written and flushed as each item finishes, so a batch
stopped in any way leaves a table of what finished; or Parquet (with pyarrow), written
whole when the batch ends or is stopped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from ..storage.mounts import MountError

STATUSES = ("ok", "failed", "error")
STOPPED = "stopped"  # an item's run was ended by a stop: it has no row
_EXIT_KINDS = {134: "trapped", 124: "timed out", 137: "out of memory", 152: "out of fuel"}


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """One row of the table (see the module doc)."""

    index: int
    input: str
    status: str
    exit_code: int
    error: str | None = None
    outputs: tuple[str, ...] = ()
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    retries: int = 0
    seconds: float = 0.0
    worker: str = ""

    @property
    def finished(self) -> bool:
        return self.status in STATUSES

    def row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["outputs"] = list(self.outputs)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ItemResult:
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in row.items() if k in names}
        given["outputs"] = tuple(given.get("outputs") or ())
        return cls(**given)


def failure_kind(result: ItemResult) -> str:
    """How a failed item ended, in a word or two (exit 0: its output was missing)."""
    if result.exit_code == 0:
        return "no output"
    return _EXIT_KINDS.get(result.exit_code, f"exit {result.exit_code}")


@dataclasses.dataclass
class BatchResult:
    """What a batch did: ``items`` that finished in this run, in the order they finished;
    ``skipped`` items a resumed table already had done; ``total`` items in the batch;
    ``stopped`` when Ctrl-C (or SIGTERM) ended it early; its wall-clock ``seconds``; and
    ``shared_outputs``, output URLs more than one item published."""

    items: list[ItemResult]
    total: int
    skipped: int = 0
    stopped: bool = False
    seconds: float = 0.0
    shared_outputs: list[str] = dataclasses.field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def not_run(self) -> int:
        return self.total - self.skipped - len(self.items)

    def summary(self) -> str:
        """One line: what finished, how, and how fast; what a stop left."""
        failed = [item for item in self.items if item.status == "failed"]
        parts = [f"{self.ok} ok"]
        if failed:
            kinds = Counter(failure_kind(item) for item in failed)
            parts.append(f"{len(failed)} failed ("
                         + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + ")")
        if self.count("error"):
            parts.append(f"{self.count('error')} error")
        if self.skipped:
            parts.append(f"{self.skipped} done before")
        if self.not_run:
            parts.append(f"{self.not_run} not run")
        rate = len(self.items) / self.seconds if self.seconds > 0 else 0.0
        line = (f"{self.total} item{'' if self.total == 1 else 's'}: " + ", ".join(parts)
                + f"; {len(self.items)} in {self.seconds:.1f} s ({rate:.1f}/s)")
        return ("stopped: " if self.stopped else "") + line


class ResultsTable:
    """Where rows go as items finish: JSON lines to ``path`` (``-``: stdout; None:
    nowhere), or Parquet to ``path``, written at :meth:`close`. ``kept`` rows (from a
    resumed table) come first."""

    def __init__(self, path: str | Path | None, fmt: str, kept: Sequence[ItemResult] = ()):
        self.path = None if path is None or str(path) == "-" else Path(path)
        self.format = fmt
        self._rows: list[ItemResult] = list(kept)
        self._out: IO[str] | None = None
        if fmt == "jsonl" and path is not None:
            if self.path is None:
                self._out = sys.stdout
                self._out.writelines(_line(row) for row in kept)
            else:
                partial = self.path.with_name(self.path.name + ".new")
                with open(partial, "w", encoding="utf-8") as out:
                    out.writelines(_line(row) for row in kept)
                partial.replace(self.path)  # a resumed table, rewritten whole or not at all
                self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        elif fmt == "parquet":
            parquet_writer()  # missing pyarrow is found before anything runs

    def add(self, result: ItemResult) -> None:
        if self._out is not None:
            self._out.write(_line(result))
            self._out.flush()
        else:
            self._rows.append(result)

    def close(self) -> None:
        if self.format == "parquet" and self.path is not None:
            write_parquet(self.path, self._rows)
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None


def _line(result: ItemResult) -> str:
    return json.dumps(result.row(), ensure_ascii=False) + "\n"


def format_of(path: str | Path | None, given: str | None) -> str:
    """The table's format: as given, else Parquet for a ``.parquet`` name, else JSON
    lines. Parquet without pyarrow is refused here, in one line."""
    fmt = given or ("parquet" if path is not None and str(path).endswith(".parquet")
                    else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        raise MountError(f"results format {fmt!r}: there are jsonl and parquet")
    if fmt == "parquet":
        if path is None or str(path) == "-":
            raise MountError("a Parquet table needs a file: give --results PATH.parquet")
        parquet_writer()
    return fmt


def parquet_writer() -> Any:
    try:
        import pyarrow.parquet
    except ImportError:
        raise MountError("a Parquet results table needs pyarrow (pip install pyarrow); "
                         "or write JSON lines (--results PATH.jsonl)") from None
    return pyarrow.parquet


def write_parquet(path: Path, rows: Iterable[ItemResult]) -> None:
    parquet = parquet_writer()
    import pyarrow

    listed = [row.row() for row in rows]
    names = [f.name for f in dataclasses.fields(ItemResult)]
    table = pyarrow.table({name: [row[name] for row in listed] for name in names})
    partial = path.with_name(path.name + ".new")
    parquet.write_table(table, partial)
    partial.replace(path)


def read_table(path: str | Path) -> list[ItemResult]:
    """The rows of a results table (JSON lines, or Parquet by its name); a last line cut
    short (a batch killed while writing it) is left out."""
    path = Path(path)
    if not path.is_file():
        raise MountError(f"resume {path}: no such results table")
    if path.name.endswith(".parquet"):
        parquet = parquet_writer()
        return [ItemResult.from_row(row) for row in parquet.read_table(path).to_pylist()]
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(ItemResult.from_row(json.loads(line)))
        except (ValueError, TypeError) as exc:
            if number == len(lines):
                break  # cut short
            raise MountError(f"resume {path}: line {number} is not a results row: "
                             f"{exc}") from None
    return rows


def done_inputs(rows: Iterable[ItemResult]) -> dict[str, ItemResult]:
    """The rows of inputs done (status ok), by input: the last one of each."""
    return {row.input: row for row in rows if row.status == "ok"}
