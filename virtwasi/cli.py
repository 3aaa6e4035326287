"""The ``virtwasi`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime

from . import __version__
from .demo import runner as scenario
from .storage.mounts import MountError, MountSource, Overlay, parse_dir, parse_mount, parse_overlay
from .wasi.trace import FORMATS as TRACE_FORMATS
from .wasi.trace import Tracer
from .world import Definition, Semantics

if TYPE_CHECKING:
    from .runtime import GuestStopped
    from .worldfiles.plan import WorldOptions

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
  tar::file://data.tar.gz    a tar archive, plain or compressed (read-only)
  memory://                  fsspec's in-memory store (one per process, unlike mem://)

Examples:
  virtwasi run prog.wasm -- --flag arg
  virtwasi run --dir ./data::/data prog.wasm input.txt
  virtwasi run --mount /site=zip::file://site.zip --dir ./in::/in --ro /in prog.wasm
  virtwasi run --mount /site=zip::file://site.zip --overlay /site prog.wasm  # writable copy
  virtwasi run --invoke add lib.wasm 2 3
  virtwasi run --trace prog.wasm                 # every WASI call on stderr
  virtwasi run --trace=calls.jsonl --trace-format json prog.wasm
  virtwasi run --world world.toml -- more args   # instances, mounts, module: from a file

Interrupts and limits (exit codes):
  130, 143   SIGINT (Ctrl-C), SIGTERM: the guest is stopped, files are flushed and closed
  124        --timeout: the guest ran longer than SECONDS (wall clock)
  152        --fuel: the guest used up its N units of fuel (about one per wasm instruction)
  137        --max-memory: the guest's linear memory would grow past BYTES; a growth past it
             fails in the guest (malloc returns NULL), and a guest that then traps or exits
             non-zero within 1 MiB of the limit is reported as having hit it
  134        the guest trapped
  2          virtwasi could not start the guest

With --world, the world file says what serves the module (so --dir, --mount, --ro,
--overlay, --impl, --quota and --audit do not apply), and ARGS after -- follow the file's
own [run] args. A MODULE given before -- runs instead of the file's module, with ARGS
alone; --env and --semantics win over the file's.
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
    run.add_argument("module", metavar="MODULE.wasm", nargs="?",
                     help="the module to run (with --world: instead of the world file's)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments for the guest (after --, or after MODULE)")
    run.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                     help="serve a host folder at GUEST (default: the same path)")
    run.add_argument("--mount", action="append", default=[], metavar="GUEST=URL",
                     help="serve a host folder or any fsspec URL at GUEST (repeatable)")
    run.add_argument("--ro", action="append", default=[], metavar="GUEST",
                     help="serve the mount at GUEST read-only (repeatable)")
    run.add_argument("--overlay", action="append", default=[], metavar="GUEST[=UPPER_URL]",
                     help="serve the mount at GUEST copy-on-write: its source becomes the "
                     "read-only lower layer and writes go to UPPER_URL (default: a private "
                     "in-memory tree) (repeatable)")
    run.add_argument("--env", action="append", default=[], metavar="K=V",
                     help="an environment variable for the guest (repeatable)")
    run.add_argument("--inherit-env", action="store_true",
                     help="pass this process's environment to the guest (--env wins)")
    run.add_argument("--invoke", metavar="FUNC",
                     help="call the export FUNC with ARGS as integers and print its results, "
                     "instead of running _start (for reactor modules)")
    run.add_argument("--world", metavar="WORLD.toml",
                     help="build the instances, mounts and run from a world file")
    run.add_argument("--impl", choices=["virtual", "native"],
                     help="the WASI implementation: the unprivileged library instance "
                     "(default) or the host's native one (host folders only)")
    run.add_argument("--quota", metavar="BYTES[:INODES]",
                     help="refuse growth of the tree past BYTES (K, M, G suffixes) and "
                     "INODES with EDQUOT: a quota layer stacked on the implementation")
    run.add_argument("--audit", metavar="PATH_OR_URL",
                     help="log every WASI call as a JSON line to a local file (appended as "
                     "it runs) or any fsspec URL (written whole at exit): an audit layer")
    run.add_argument("--semantics", choices=[s.value for s in Semantics],
                     help="the handle semantics of the world (default: component-model)")
    run.add_argument("--trace", nargs="?", const="-", metavar="PATH",
                     help="print every wasi_snapshot_preview1 call the guest makes, one "
                     "line each: its decoded arguments, its answer (0 with what it wrote, an "
                     "errno by name, exit(N), a trap) and the time it took; to stderr, or to "
                     "PATH when given as --trace=PATH")
    run.add_argument("--trace-format", choices=TRACE_FORMATS,
                     help="the trace as strace-like text (default) or as JSON lines: "
                     "call, args, result (errno, exit or trap), out, us (implies --trace)")
    run.add_argument("--timeout", metavar="SECONDS", type=_seconds,
                     help="stop the guest after SECONDS of wall clock (exit 124)")
    run.add_argument("--fuel", metavar="N", type=_fuel,
                     help="stop the guest once it has used N units of fuel, about one per "
                     "wasm instruction (exit 152)")
    run.add_argument("--max-memory", metavar="BYTES", type=_max_memory,
                     help="let the guest's linear memory grow to BYTES at most (K, M, G "
                     "suffixes; exit 137 when it ends for want of more)")

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

    graph = commands.add_parser(
        "graph",
        help="draw the instances of a world file",
        description="Build the world WORLD.toml describes, without running its module, and "
        "draw it: the module, each instance with its kind and the resource types it "
        "exports, the imports between them, and the mounts.",
        epilog="Example:\n  virtwasi graph examples/readonly.toml --svg world.svg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    graph.add_argument("world", metavar="WORLD.toml", help="the world file")
    graph.add_argument("--svg", metavar="OUT.svg", help="also write the picture as SVG")

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

    examples = commands.add_parser(
        "examples",
        help="copy the example world files and demo programs into a folder",
        description="Copy the example world files (examples/, with the data they serve) and "
        "the demo wasm programs (scenarios/programs/) into DEST, at the same paths as in a "
        "checkout, so that the README's commands run from DEST as written. A file already "
        "there with other contents is left alone, and nothing is copied, unless --force.",
        epilog="Example:\n  virtwasi examples ex && cd ex && "
        "virtwasi run --world examples/readonly.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    examples.add_argument("dest", metavar="DEST", help="the folder to copy into (made if missing)")
    examples.add_argument("--force", action="store_true",
                          help="overwrite files of the same name with other contents")
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
    failed = [item.name for item in chosen if _scenario_code(item) != 0]
    if args.all:
        print(f"\n{len(chosen) - len(failed)} of {len(chosen)} scenarios held"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _scenario_code(item: scenario.Scenario) -> int:
    """A scenario's exit code; one that breaks is a failure with one line, and the others
    still run."""
    try:
        return item.run()
    except Exception as exc:
        print(f"virtwasi: scenario {item.name} broke: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1


def _fail(message: str) -> int:
    print(f"virtwasi: {message}", file=sys.stderr)
    return 2


def _parse_env(args: argparse.Namespace, inherit: bool | None = None,
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The guest's environment: this process's if inherited, then ``base``, then --env."""
    env = dict(os.environ) if (args.inherit_env if inherit is None else inherit) else {}
    env.update(base or {})
    for item in args.env:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise MountError(f"--env wants K=V, got {item!r}")
        env[key] = val
    return env


def _parse_mounts(args: argparse.Namespace) -> dict[str, MountSource]:
    mounts: dict[str, MountSource] = {}
    for spec in args.dir:
        guest, host = parse_dir(spec)
        mounts[guest] = Path(host)
    for spec in args.mount:
        guest, url = parse_mount(spec)
        mounts[guest] = url
    for spec in args.overlay:
        guest, upper = parse_overlay(spec)
        if guest not in mounts:
            raise MountError(f"--overlay {guest}: nothing is mounted there")
        mounts[guest] = Overlay(mounts[guest], upper)
    return mounts


_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _parse_size(size: str) -> int:
    """BYTES with an optional K, M or G suffix; KeyError or ValueError if malformed."""
    number = size.rstrip("KMGkmg")
    value = int(number) * _SIZE_SUFFIXES[size[len(number):].upper()]
    if value < 0:
        raise ValueError(size)
    return value


def _max_memory(text: str) -> int:
    try:
        return _parse_size(text)
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"want BYTES, a whole number that may end in K, M or G, got {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"want a number of seconds above 0, got {text!r}")
    return value


def _fuel(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 0, got {text!r}")
    return value


def _parse_layers(args: argparse.Namespace) -> list[tuple[str, Definition]]:
    """--quota and --audit as layers, the audit on top so it logs what the quota refused."""
    from .layers import audit_layer, quota_layer

    layers: list[tuple[str, Definition]] = []
    if args.quota is not None:
        size, _, inodes = args.quota.partition(":")
        try:
            limits = [_parse_size(size) if size else None, int(inodes) if inodes else None]
            layers.append(("quota", quota_layer(*limits)))
        except (KeyError, ValueError):
            raise MountError(f"--quota wants BYTES[:INODES], whole numbers of at least 0 "
                             f"(BYTES may end in K, M or G), got {args.quota!r}") from None
    if args.audit is not None:
        try:
            layers.append(("audit", audit_layer(args.audit)))
        except ValueError as exc:
            raise MountError(f"--audit: {exc}") from None
    return layers


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


RunPlan = tuple[Path, list[str], "WorldOptions", dict[str, str]]
"""The module, its arguments, what builds its world, and its environment."""


def _guest_args(args: argparse.Namespace) -> list[str]:
    return list(args.args[1:] if args.args[:1] == ["--"] else args.args)


def _flags_run(args: argparse.Namespace) -> RunPlan:
    from .worldfiles.plan import WorldOptions

    if args.module is None:
        raise MountError("run: give MODULE.wasm, or --world WORLD.toml")
    world = WorldOptions(mounts=_parse_mounts(args) or None, read_only=args.ro,
                         semantics=Semantics(args.semantics or Semantics.COMPONENT_MODEL),
                         layers=_parse_layers(args), impl=args.impl or "virtual")
    return Path(args.module), _guest_args(args), world, _parse_env(args)


_NOT_WITH_WORLD = ("dir", "mount", "ro", "overlay", "impl", "quota", "audit")


def _world_run(args: argparse.Namespace, argv: Sequence[str]) -> RunPlan:
    """The run a world file describes, as the command line adjusts it (see RUN_EPILOG)."""
    from .worldfiles.plan import WorldFileError, load

    for name in _NOT_WITH_WORLD:
        if getattr(args, name):
            raise WorldFileError(f"--{name} cannot be used with --world: the world file "
                                 "says what serves the module")
    plan = load(args.world)
    guest = _guest_args(args)
    module = None if args.module is None else Path(args.module)
    # argparse takes the first word after -- for MODULE; with a world file it is an ARG.
    if module is not None and "--" in argv and build_parser().parse_args(
            list(argv[:list(argv).index("--")])).module is None:
        module, guest = None, [str(args.module), *guest]
    if module is None:
        if plan.module is None:
            raise WorldFileError(f"{plan.path}: [run] module: missing; give it there or as "
                                 "MODULE.wasm before --")
        module, guest = plan.module, [*plan.args, *guest]
    return module, guest, plan.world_options(args.semantics), _parse_env(args, base=plan.env)


def _tracer(args: argparse.Namespace) -> Tracer | None:
    """The trace --trace and --trace-format ask for: stderr, or a file written afresh."""
    if args.trace is None and args.trace_format is None:
        return None
    path = args.trace or "-"
    return Tracer(sys.stderr if path == "-" else path, args.trace_format or "text")


def _spell_trace(argv: list[str]) -> list[str]:
    """``argv`` with a bare ``run --trace`` spelled ``--trace=-``, so that it never takes
    the module for its PATH (a PATH is given as ``--trace=PATH``). Only virtwasi's own
    options change: not the words after ``--``, nor the guest's (see :func:`_parse`)."""
    if argv[:1] != ["run"]:
        return argv
    cut = argv.index("--") if "--" in argv else len(argv)
    return [("--trace=-" if word == "--trace" and i < cut else word)
            for i, word in enumerate(argv)]


def _parse(parser: argparse.ArgumentParser, argv: list[str]
           ) -> tuple[argparse.Namespace, list[str]]:
    """The parsed arguments, and ``argv`` as parsed (with :func:`_spell_trace`)."""
    spelled = _spell_trace(argv)
    args = parser.parse_args(spelled)
    if spelled != argv and getattr(args, "args", None):
        # The guest's words end argv (argparse.REMAINDER): give them back as they were.
        args.args = argv[len(argv) - len(args.args):]
    return args, spelled


def _run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """Run the guest with SIGINT and SIGTERM ending it, never Python: from parsing to the
    end of teardown, a signal is recorded and the guest stopped; teardown always finishes,
    so what the guest wrote and closed is stored."""
    from .engine import interrupt

    with interrupt.catching(interrupt.DEFAULT_SIGNALS) as signals:
        # A signal during teardown is recorded and ignored: the exit code stays the guest's.
        return _run_guest(args, argv, signals.received if signals is not None else [])


def _signal_stop(signum: int) -> GuestStopped:
    from .runtime import GuestInterrupted

    return GuestInterrupted(signum)


def _stopped(stop: GuestStopped) -> int:
    print(f"virtwasi: {stop}", file=sys.stderr, flush=True)
    return stop.exit_code


def _run_guest(args: argparse.Namespace, argv: Sequence[str], received: list[int]) -> int:
    from .engine import interrupt
    from .runtime import TRAP_EXIT_CODE, GuestExit, GuestStopped, GuestTrap, Session

    try:
        module, guest_args, world, env = (_world_run(args, argv) if args.world
                                          else _flags_run(args))
    except ValueError as exc:  # MountError, WorldFileError: one line for the user
        return _fail(str(exc))
    if not module.is_file():
        return _fail(f"no such module file: {module}")
    try:
        tracer = _tracer(args)
    except OSError as exc:
        return _fail(f"--trace: {exc.strerror}: {args.trace}")
    try:
        numbers = _integers(guest_args) if args.invoke else []
        session = Session(module, guest_args, **world, env=env, stdin=sys.stdin.buffer,
                          stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
                          on_compile=_compiling_note(module), trace=tracer,
                          timeout=args.timeout, fuel=args.fuel, max_memory=args.max_memory,
                          signals=interrupt.DEFAULT_SIGNALS)
    except GuestStopped as stop:
        return _stopped(stop)
    except MountError as exc:
        return _fail(f"{args.world}: {exc}" if args.world else str(exc))
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"{module}: not a runnable WASI module: {first}")
    except (ValueError, OSError) as exc:
        return _fail(f"{module}: {exc}")
    with session:
        if received:  # a signal while compiling or opening the mounts: do not start
            return _stopped(_signal_stop(received[0]))
        if not args.invoke:
            try:
                return session.start()
            except GuestStopped as stop:
                return _stopped(stop)
            except ValueError as exc:
                return _fail(f"{module}: {exc}")
        try:
            results = session.call(args.invoke, *numbers)
        except GuestStopped as stop:
            return _stopped(stop)
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
    from .compare import diff

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


def _graph(args: argparse.Namespace) -> int:
    from .worldfiles.graph import describe, render_text
    from .worldfiles.plan import WorldFileError, load
    from .worldfiles.svg import render_svg

    try:
        plan = load(args.world)
        graph = describe(plan)
    except WorldFileError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # MountError and the like, from building the world
        return _fail(f"{args.world}: {exc}")
    print(render_text(graph), end="")
    if args.svg:
        try:
            Path(args.svg).write_text(render_svg(graph), encoding="utf-8")
        except OSError as exc:
            return _fail(f"--svg: {exc.strerror}: {args.svg}")
        print(f"wrote {args.svg}")
    return 0


def example_files() -> dict[str, Path]:
    """Each example file by its path under DEST: the world files and what they serve, and
    the demo programs. From the checkout, or from the copies a wheel carries in virtwasi."""
    package = Path(__file__).resolve().parent
    root = package.parent
    if (root / "pyproject.toml").is_file() and (root / "examples").is_dir():
        examples, programs = root / "examples", root / "scenarios" / "programs"
    else:
        examples, programs = package / "examples", package / "scenarios" / "programs"
    files = {f"examples/{p.relative_to(examples).as_posix()}": p
             for p in sorted(examples.rglob("*")) if p.is_file()}
    files.update((f"scenarios/programs/{p.name}", p) for p in sorted(programs.glob("*.wasm")))
    return files


def _examples(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    files = example_files()
    if not files:
        return _fail("no example files were found beside this installation")
    targets = {dest / name: source for name, source in files.items()}
    clash = [str(t) for t, s in targets.items()
             if t.exists() and not (t.is_file() and t.read_bytes() == s.read_bytes())]
    if clash and not args.force:
        return _fail(f"{clash[0]} exists with other contents (--force overwrites"
                     + (f"; {len(clash) - 1} more" if len(clash) > 1 else "") + ")")
    try:
        for target, source in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            print(f"wrote {target}")
    except OSError as exc:
        return _fail(f"{exc.strerror}: {exc.filename}")
    print(f"\nTry: cd {dest} && virtwasi run --world examples/readonly.toml")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, argv = _parse(parser, argv)
    if args.command == "run":
        from .storage.base import UploadError

        try:
            return _run(args, argv)
        except UploadError as exc:  # the store was unreachable when the guest's files closed
            print(f"virtwasi: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
    if args.command == "graph":
        return _graph(args)
    if args.command == "scenario":
        return _scenario(args, parser)
    if args.command == "diff":
        return _diff(args)
    if args.command == "examples":
        return _examples(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
