"""``virtwasi map``: the command line of :func:`virtwasi.map`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..guest_options import (
    add_guest_options,
    add_limit_options,
    inherits_env,
    mount_options,
    parse_env,
    parse_mounts,
    parse_quota,
    read_only_paths,
)
from ..storage.mounts import MountError, check_guest_path

DESCRIPTION = """\
Run MODULE once per input, each item in a fresh world of its own (as virtwasi run runs
it), on a local process pool (one worker per core) or on a Dask cluster (--scheduler), and
write a results table: one JSON line per item as it finishes (its status, exit code, why
it failed, the outputs it published, its stdout and stderr up to --keep-output bytes, its
storage retries and its time), then a summary on stderr.
"""

EPILOG = """\
Each item sees its input alone, read-only, at /in/{name} (--input-at), and a private
in-memory tree at /. Arguments after MODULE, --env values, mount sources and --output are
templates: {path} (the input's URL or host path), {name} (its last component), {stem} (the
name without its last suffix), {index} (its place, from 0; {index:05d} pads it); {{ and }}
are braces. Mounts (--dir, --mount) are shared by every item and so read-only; a mem://
mount, or an --overlay (whose upper layer must be mem://), is each item's own.

Outputs: --output GUEST=URL publishes the file the guest wrote at GUEST to URL, and
--output GUEST/=URL a folder's files under URL, only once the guest exited 0; an item that
failed or was stopped publishes nothing, and an item run again replaces its own outputs.
Each object is stored whole or not at all. A storage step that fails with EIO (reading the
input, storing an output) is tried again --retries times; a guest's own exit never is.

Examples:
  virtwasi map --input 'photos/*.svg' --output /out.png=png/{stem}.png render.wasm \\
      /in/{name} /out.png
  virtwasi map --input s3://bucket/in/ --output /out/=s3://bucket/out/{stem} \\
      --mount-option s3.endpoint_url=http://127.0.0.1:9000 --results r.jsonl tool.wasm \\
      /in/{name} /out
  virtwasi map --resume r.jsonl --input s3://bucket/in/ ...    # skips the items done
  virtwasi map --scheduler tcp://10.0.0.5:8786 --input ... tool.wasm ...   # on Dask

Failures: an item that exits non-zero, traps (134), times out (124) or hits a limit is a
row with status failed, and the others go on. A worker process that dies has its items
run again on a fresh one. Ctrl-C stops cleanly: nothing of an unfinished item is published,
the table lists what finished, and --resume TABLE runs the rest.

Exit codes: 0 every item ok; 1 an item failed; 2 a usage error (nothing run); 130, 143
stopped by SIGINT, SIGTERM.
"""


def add_map_command(commands: Any) -> argparse.ArgumentParser:
    """Declare ``map`` among ``commands`` (argparse's subparsers)."""
    command: argparse.ArgumentParser = commands.add_parser(
        "map", help="run a WASI module over many inputs, on a process pool or on Dask",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("module", metavar="MODULE.wasm", nargs="?",
                         help="the WASI command to run for each input")
    command.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                         help="arguments for the guest, templates: every word after MODULE")
    command.add_argument("--input", action="append", default=[], metavar="GLOB|FOLDER|FILE",
                         help="inputs: an fsspec glob (s3://b/in/*.svg), a folder or an "
                         "archive (zip::file://a.zip: every file in it), or one file "
                         "(repeatable)")
    command.add_argument("--input-list", metavar="FILE",
                         help="inputs, one URL or path a line, as they are (- for stdin)")
    command.add_argument("--input-at", default="/in", metavar="GUEST",
                         help="where each item sees its input, as GUEST/{name} (default: "
                         "/in; none: not at all, for a guest that reads it from a mount)")
    command.add_argument("--output", action="append", default=[], metavar="GUEST=URL",
                         help="publish the file the guest wrote at GUEST to URL once it "
                         "exited 0; GUEST/ publishes a folder's files under URL "
                         "(repeatable; both sides templates)")
    add_guest_options(command)
    add_limit_options(command)
    command.add_argument("--retries", type=_count, default=2, metavar="N",
                         help="try a storage step that failed with EIO again, N times at "
                         "most per item (default: 2)")
    command.add_argument("--workers", type=_positive, metavar="N",
                         help="local worker processes (default: one per core)")
    command.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on the Dask cluster of this scheduler instead "
                         "(tcp://HOST:8786; needs virtwasi[dask])")
    command.add_argument("--results", metavar="PATH",
                         help="write the results table there (default: stdout), JSON lines "
                         "as items finish, or Parquet for a .parquet name (needs pyarrow)")
    command.add_argument("--results-format", choices=("jsonl", "parquet"),
                         help="the table's format, whatever its name")
    command.add_argument("--resume", metavar="RESULTS",
                         help="skip the inputs this table has done (status ok), and go on "
                         "writing it (unless --results names another table)")
    command.add_argument("--keep-output", type=_count, default=4096, metavar="BYTES",
                         help="the bytes of each item's stdout and of its stderr the table "
                         "keeps: half from the start, half from the end (default: 4096)")
    return command


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"want a whole number of at least 0, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"want a whole number above 0, got {text!r}")
    return int(text)


def parse_output(spec: str) -> tuple[str, str]:
    """``GUEST=URL`` as --output takes it; GUEST keeps a trailing ``/`` (a folder)."""
    guest, sep, url = spec.partition("=")
    if not sep or not guest or not url:
        raise MountError(f"--output wants GUEST=URL, got {spec!r}")
    try:
        normal = check_guest_path(guest)
    except MountError as exc:
        raise MountError(f"--output {spec}: {exc}") from None
    return (normal.rstrip("/") + "/" if guest.endswith("/") else normal), url


def _input_list(name: str) -> list[str]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MountError(f"--input-list {name}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """--env (templates) over the inherited environment (taken as it is)."""
    inherited = ({key: value.replace("{", "{{").replace("}", "}}")
                  for key, value in os.environ.items()} if inherits_env(args) else {})
    return {**inherited, **parse_env(args, inherit=False)}


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise MountError("--scheduler needs dask.distributed: pip install "
                         "'virtwasi[dask]'") from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MountError(f"--scheduler {address}: cannot reach it: {exc}") from None


@contextmanager
def _sigterm_stops(received: list[int]) -> Iterator[None]:
    """SIGTERM stops the batch as Ctrl-C does (a KeyboardInterrupt), recorded."""
    def stop(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_map(args: argparse.Namespace) -> int:
    """``virtwasi map``; a usage error raises MountError (a one-line message)."""
    from .driver import map
    from .plan import inputs_of

    if args.module is None:
        raise MountError("map: give MODULE.wasm (see virtwasi map --help)")
    if not args.input and args.input_list is None:
        raise MountError("map: give the inputs: --input GLOB|FOLDER|FILE, or --input-list "
                         "FILE")
    outputs = dict(parse_output(spec) for spec in args.output)
    options = mount_options(args)
    mounts = parse_mounts(args, [*args.input, *outputs.values()], "input or output")
    inputs = inputs_of(args.input, options)
    if args.input_list is not None:
        inputs += _input_list(args.input_list)
    if not inputs:
        raise MountError(f"map: no inputs: {', '.join(args.input) or args.input_list} "
                         "named none")
    client = _dask_client(args.scheduler) if args.scheduler else None
    received: list[int] = []
    try:
        with _sigterm_stops(received):
            batch = map(
                Path(args.module), inputs, args.args, outputs=outputs, mounts=mounts,
                read_only=read_only_paths(args, mounts),
                input_at=None if args.input_at == "none" else args.input_at,
                env=_environment(args), program_name=args.argv0, timeout=args.timeout,
                fuel=args.fuel, max_memory=args.max_memory,
                quota=parse_quota(args.quota) if args.quota is not None else None,
                storage_options=options, retries=args.retries, workers=args.workers,
                client=client, results=args.results or (None if args.resume else "-"),
                results_format=args.results_format,
                resume=args.resume, keep_output=args.keep_output)
    finally:
        if client is not None:
            client.close()
    print(f"virtwasi map: {batch.summary()}", file=sys.stderr)
    table = args.results or args.resume
    if batch.shared_outputs:
        print(f"virtwasi map: {len(set(batch.shared_outputs))} output(s) published by more "
              f"than one item, the last one's kept (first: {batch.shared_outputs[0]})",
              file=sys.stderr)
    if batch.stopped:
        rest = f"virtwasi map --resume {table} ..." if table else "--resume with --results"
        print(f"virtwasi map: stopped; the table lists what finished ({rest} runs the rest)",
              file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    return 0 if batch.ok == len(batch.items) else 1
