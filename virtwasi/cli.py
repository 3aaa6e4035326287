"""The ``virtwasi`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import wasmtime

from . import __version__, scenario
from .mounts import MountError, parse_dir, parse_mount
from .world import Semantics

DESCRIPTION = """\
virtwasi runs WebAssembly modules built for WASI preview 1 with their files served by a WASI
written as an unprivileged library instance, and demonstrates, scenario by scenario, why
private resource types, handle tables, destructors and instance teardown give that library
the same powers as a native implementation.
"""


RUN_EPILOG = """\
With no --dir or --mount the module gets a fresh, empty, writable in-memory tree at /.
Mounts may nest (/ and /usr/lib): the guest's libc picks the longest matching prefix.

URLs for --mount:
  ./data, file:///srv/data   a host folder (symlinks never lead out of it)
  mem://                     a fresh, private in-memory tree
  zip::file://site.zip       any fsspec URL, chained ones too (archives are read-only)
  memory://                  fsspec's in-memory store (one per process, unlike mem://)

Examples:
  virtwasi run prog.wasm -- --flag arg
  virtwasi run --dir ./data::/data prog.wasm input.txt
  virtwasi run --mount /site=zip::file://site.zip --dir ./in::/in --ro /in prog.wasm
  virtwasi run --invoke add lib.wasm 2 3
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtwasi",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"virtwasi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a WASI preview 1 module",
        description="Run MODULE's _start (or, with --invoke, one export) with its filesystem "
        "served by the virtual WASI implementation. The process exits with the guest's exit "
        "code (134 on a trap, 2 when virtwasi cannot start it).",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("module", metavar="MODULE.wasm", help="the module to run")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments for the guest (after --, or after MODULE)")
    run.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                     help="serve a host folder at GUEST (default: the same path)")
    run.add_argument("--mount", action="append", default=[], metavar="GUEST=URL",
                     help="serve a host folder or any fsspec URL at GUEST (repeatable)")
    run.add_argument("--ro", action="append", default=[], metavar="GUEST",
                     help="serve the mount at GUEST read-only (repeatable)")
    run.add_argument("--env", action="append", default=[], metavar="K=V",
                     help="an environment variable for the guest (repeatable)")
    run.add_argument("--inherit-env", action="store_true",
                     help="pass this process's environment to the guest (--env wins)")
    run.add_argument("--invoke", metavar="FUNC",
                     help="call the export FUNC with ARGS as integers and print its results, "
                     "instead of running _start (for reactor modules)")
    run.add_argument("--impl", default="virtual", choices=["virtual", "native"],
                     help="the WASI implementation: the unprivileged library instance "
                     "(default) or the host's native one (host folders only)")
    run.add_argument("--semantics", default="component-model",
                     choices=[s.value for s in Semantics],
                     help="the handle semantics of the world (default: component-model)")

    diff = commands.add_parser(
        "diff",
        help="run a module on every runtime and compare what each produced",
        description="Run MODULE on wasmtime's built-in WASI (the reference), on virtwasi's "
        "native implementation, and on the virtual one over a host folder and over memory, "
        "each from its own copy of the initial tree; compare exit code, stdout, stderr and "
        "the final tree. Exits 0 when all agree, 1 when any differs.",
        epilog="Examples:\n  virtwasi diff --tree ./testdata prog.wasm -- input.txt\n"
        "  virtwasi diff --runtime wasmer prog.wasm   # Wasmer, through wasmer-sdk: only "
        "when named",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("module", metavar="MODULE.wasm", help="the WASI command to run")
    diff.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                      help="arguments for the guest (after --, or after MODULE)")
    diff.add_argument("--tree", metavar="FOLDER",
                      help="the initial tree: each runtime gets a copy as / (default: empty)")
    diff.add_argument("--env", action="append", default=[], metavar="K=V",
                      help="an environment variable for the guest (repeatable)")
    diff.add_argument("--stdin", metavar="FILE", help="a file to give the guest as stdin")
    diff.add_argument("--runtime", action="append", metavar="NAME",
                      help="compare only these runtimes with the reference (repeatable; "
                      "default: all but the optional wasmer)")

    scen = commands.add_parser(
        "scenario",
        help="list or run the narrated demonstrations",
        description="Each scenario prints a narrated transcript and exits non-zero if the "
        "claim it demonstrates does not hold.",
    )
    scen_cmds = scen.add_subparsers(dest="action", metavar="ACTION")
    scen_cmds.add_parser("list", help="name and summary of every scenario")
    scen_run = scen_cmds.add_parser("run", help="run one scenario, or all of them with --all")
    scen_run.add_argument("name", nargs="?", help="scenario name, as `scenario list` shows it")
    scen_run.add_argument("--all", action="store_true", help="run every scenario in turn")
    return parser


def _scenario(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.action == "list":
        for item in scenario.discover():
            print(f"{item.name:<24} {item.summary}")
        return 0
    if args.action != "run":
        parser.parse_args(["scenario", "--help"])
        return 2
    if args.all == bool(args.name):
        print("virtwasi scenario run: give one scenario name, or --all", file=sys.stderr)
        return 2
    if args.all:
        chosen = scenario.discover()
    else:
        found = scenario.find(args.name)
        if found is None:
            names = ", ".join(s.name for s in scenario.discover())
            print(f"virtwasi: no scenario named {args.name!r} (there are: {names})",
                  file=sys.stderr)
            return 2
        chosen = [found]
    failed = [item.name for item in chosen if item.run() != 0]
    if args.all:
        print(f"\n{len(chosen) - len(failed)} of {len(chosen)} scenarios held"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _fail(message: str) -> int:
    print(f"virtwasi: {message}", file=sys.stderr)
    return 2


def _parse_env(args: argparse.Namespace, inherit: bool | None = None) -> dict[str, str]:
    env = dict(os.environ) if (args.inherit_env if inherit is None else inherit) else {}
    for item in args.env:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise MountError(f"--env wants K=V, got {item!r}")
        env[key] = val
    return env


def _parse_mounts(args: argparse.Namespace) -> dict[str, str | Path]:
    mounts: dict[str, str | Path] = {}
    for spec in args.dir:
        guest, host = parse_dir(spec)
        mounts[guest] = Path(host)
    for spec in args.mount:
        guest, url = parse_mount(spec)
        mounts[guest] = url
    return mounts


def _integers(values: list[str]) -> list[int | float]:
    numbers: list[int | float] = []
    for value in values:
        try:
            numbers.append(int(value, 0))
        except ValueError:
            try:
                numbers.append(float(value))
            except ValueError:
                raise MountError(f"--invoke arguments must be numbers, got {value!r}") from None
    return numbers


def _compiling_note(module: Path) -> Callable[[int], None]:
    """Says why the first run of a big module is slow, on a terminal only."""
    def note(size: int) -> None:
        if size >= 4 << 20 and sys.stderr.isatty():
            print(f"virtwasi: compiling {module.name} ({size / 2**20:.1f} MiB) once; later "
                  "runs load it from the cache", file=sys.stderr, flush=True)
    return note


def _run(args: argparse.Namespace) -> int:
    from .runtime import TRAP_EXIT_CODE, GuestExit, GuestTrap, Session

    module = Path(args.module)
    if not module.is_file():
        return _fail(f"no such module file: {module}")
    guest_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        env = _parse_env(args)
        mounts = _parse_mounts(args)
        numbers = _integers(guest_args) if args.invoke else []
        session = Session(module, guest_args, mounts=mounts or None, read_only=args.ro,
                          env=env, stdin=sys.stdin.buffer, stdout=sys.stdout.buffer,
                          stderr=sys.stderr.buffer, semantics=args.semantics, impl=args.impl,
                          on_compile=_compiling_note(module))
    except MountError as exc:
        return _fail(str(exc))
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"{module}: not a runnable WASI module: {first}")
    except (ValueError, OSError) as exc:
        return _fail(f"{module}: {exc}")
    with session:
        if not args.invoke:
            try:
                return session.start()
            except ValueError as exc:
                return _fail(f"{module}: {exc}")
        try:
            results = session.call(args.invoke, *numbers)
        except GuestExit as exit_:
            return exit_.code
        except GuestTrap as trap:
            print(f"Error: {trap}", file=sys.stderr)
            return TRAP_EXIT_CODE
        except ValueError as exc:
            return _fail(f"{module}: {exc}")
        values = results if isinstance(results, list | tuple) else (
            [] if results is None else [results])
        for value in values:
            print(value)
        return 0


def _diff(args: argparse.Namespace) -> int:
    from . import diff

    module = Path(args.module)
    if not module.is_file():
        return _fail(f"no such module file: {module}")
    tree = Path(args.tree) if args.tree else None
    if tree is not None and not tree.is_dir():
        return _fail(f"--tree: no such folder: {tree}")
    try:
        env = _parse_env(args, inherit=False)
        stdin = Path(args.stdin).read_bytes() if args.stdin else b""
        runtimes = args.runtime or diff.default_runtimes()
        for name in runtimes:
            diff.runner(name)
    except (MountError, ValueError, ImportError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--stdin: {exc.strerror}: {exc.filename}")
    guest_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        comparison = diff.compare(module, guest_args, runtimes=runtimes, env=env, stdin=stdin,
                                  prepare=diff.copier(tree) if tree else None)
    except ValueError as exc:  # a runtime that cannot take this run (wasmer: a symlink)
        return _fail(str(exc))
    print(diff.report(comparison), end="")
    return 0 if comparison.same else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "scenario":
        return _scenario(args, parser)
    if args.command == "diff":
        return _diff(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
