"""The ``virtwasi`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import wasmtime

from . import __version__
from .demo import runner as scenario
from .guest_options import (
    add_guest_options,
    add_limit_options,
    mount_options,
    parse_env,
    parse_mounts,
    parse_quota,
    read_only_paths,
)
from .storage.mounts import MountError
from .wasi.trace import FORMATS as TRACE_FORMATS
from .wasi.trace import Tracer
from .world import Definition, LinkError, Semantics

if TYPE_CHECKING:
    from .component.client import ComponentClient
    from .runtime import GuestStopped, Session, Unsaved
    from .storage.unsaved import KeptFile
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
  mem://                     a fresh, private in-memory tree, 4 GiB at most
  mem://?capacity=512M       the same with another bound (none: unbounded)
  zip::file://site.zip       any fsspec URL, chained ones too (archives are read-only)
  tar::file://data.tar.gz    a tar archive, plain or compressed (read-only)
  memory://                  fsspec's in-memory store (one per process, unlike mem://)

Every word after MODULE goes to the guest as it is, a -- or --flag included (as wasmtime
passes them): virtwasi's options come before MODULE, and a -- before MODULE ends them.
virtwasi prog.wasm ARGS is virtwasi run prog.wasm ARGS.

Storage options (--mount-option PROTOCOL.KEY=VALUE) go to every mount whose URL uses
PROTOCOL, in a chain too; VALUE is JSON when it parses as JSON (3, true, {"a": 1}), else
a string:
  virtwasi run --mount /data=s3://bucket/prefix \
      --mount-option s3.endpoint_url=http://127.0.0.1:9000 prog.wasm

Examples:
  virtwasi run prog.wasm --flag arg              # the guest's argv: prog.wasm --flag arg
  virtwasi prog.wasm arg                         # the same as virtwasi run prog.wasm arg
  virtwasi run --argv0 tool --env HOME --env K=V -S inherit-env prog.wasm
  virtwasi run --dir ./data::/data prog.wasm input.txt
  virtwasi run --mount /site=zip::file://site.zip --dir ./in::/in --ro /in prog.wasm
  virtwasi run --mount /site=zip::file://site.zip --overlay /site prog.wasm  # writable copy
  virtwasi run --invoke add lib.wasm 2 3
  virtwasi run --trace prog.wasm                 # every WASI call on stderr
  virtwasi run --trace=calls.jsonl --trace-format json prog.wasm
  virtwasi run --world world.toml -- more args   # instances, mounts, module: from a file

Interrupts and limits (exit codes):
  130, 143   SIGINT (Ctrl-C), SIGTERM: the guest is stopped, files are flushed and closed
             (a remote file it was still writing is kept in the unsaved folder, not stored)
  124        --timeout: the guest ran longer than SECONDS (wall clock)
  152        --fuel: the guest used up its N units of fuel (about one per wasm instruction)
  137        --max-memory: the guest's linear memory would grow past BYTES; a growth past it
             fails in the guest (malloc returns NULL), and a guest that then traps or exits
             non-zero within 1 MiB of the limit is reported as having hit it
  134        the guest trapped
  2          virtwasi could not start the guest
  1          the guest exited 0, but written data could not be stored on a remote mount:
             one line per file, the data kept in $VIRTWASI_CACHE/unsaved (~/.cache/virtwasi)

A remote file being written when virtwasi itself was killed (SIGKILL, the out-of-memory
killer) is found by the next run, reported on one line and kept in the same folder (its
exit code stays the guest's). virtwasi unsaved lists what is kept, stores it or discards it.

With --world, the world file says what serves the module (so --dir, --mount,
--mount-option, --ro, --overlay, --impl, --quota and --audit do not apply), and ARGS after
-- follow the file's own [run] args. A MODULE given (not after --) runs instead of the
file's module, with the words after it alone; --env and --semantics win over the file's.
"""


UNSAVED_DESCRIPTION = """\
List the files kept in $VIRTWASI_CACHE/unsaved (~/.cache/virtwasi/unsaved) because virtwasi
could not store them on a remote mount: an upload that failed, a file being written when the
guest was stopped, or when virtwasi itself was killed (found by the next run). One line
each: the kept file, the URL it was meant for, its size, when it was kept and why.
With --store or --discard, act on the PATHs given (kept files, or run folders: every file
in them) or on --all of them.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr: the mistake and the way out."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
                     help="the module to run, a .wasm binary or WebAssembly text (with "
                     "--world: instead of the world file's)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments for the guest: every word after MODULE, as it is")
    add_guest_options(run)
    run.add_argument("--invoke", metavar="FUNC",
                     help="call the export FUNC with ARGS, each read as its parameter's wasm "
                     "type (i32, i64: whole numbers in range; f32, f64: numbers), and print "
                     "its results, instead of running _start (for reactor modules)")
    run.add_argument("--world", metavar="WORLD.toml",
                     help="build the instances, mounts and run from a world file")
    run.add_argument("--impl", choices=["virtual", "native"],
                     help="the WASI implementation: the unprivileged library instance "
                     "(default) or the host's native one (host folders only)")
    run.add_argument("--audit", metavar="PATH_OR_URL",
                     help="log every WASI call as a JSON line to a local file (appended as "
                     "it runs) or any fsspec URL (written whole at exit; a bucket must exist "
                     "already; a log that cannot be written then is one error line, exit "
                     "code 1 if the guest's was 0): an audit layer")
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
    add_limit_options(run)

    from .batch.command import add_map_command

    add_map_command(commands)

    diff = commands.add_parser(
        "diff",
        help="run a module on every runtime and compare what each produced",
        description="Run MODULE on wasmtime's built-in WASI (the reference), on virtwasi's "
        "native implementation, and on the virtual one over a host folder and over memory, "
        "each from its own copy of the initial tree; compare exit code, stdout, stderr and "
        "the final tree. Exits 0 when all agree, 1 when any differs.",
        epilog="Examples:\n  virtwasi diff --tree ./testdata prog.wasm input.txt\n"
        "  virtwasi diff --runtime wasmer prog.wasm   # Wasmer, through wasmer-sdk: only "
        "when named",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("module", metavar="MODULE.wasm", help="the WASI command to run")
    diff.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                      help="arguments for the guest: every word after MODULE, as it is")
    diff.add_argument("--tree", metavar="FOLDER",
                      help="the initial tree: each runtime gets a copy as / (default: empty)")
    diff.add_argument("--env", action="append", default=[], metavar="NAME[=VAL]",
                      help="an environment variable for the guest; a bare NAME passes this "
                      "process's value, if it has one (repeatable)")
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
    unsaved = commands.add_parser(
        "unsaved",
        help="list, store or discard written data virtwasi could not store",
        description=UNSAVED_DESCRIPTION,
        epilog="Examples:\n  virtwasi unsaved\n"
        "  virtwasi unsaved --store --all --mount-option s3.endpoint_url=http://127.0.0.1:9000"
        "\n  virtwasi unsaved --discard ~/.cache/virtwasi/unsaved/20260101-120000-4242\n\n"
        "Exit codes: 0 done; 1 a file could not be stored (it stays kept); 2 a PATH that is "
        "not kept, or --store/--discard with neither PATH nor --all.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    unsaved.add_argument("paths", nargs="*", metavar="PATH",
                         help="kept files or run folders, as listed")
    action = unsaved.add_mutually_exclusive_group()
    action.add_argument("--store", action="store_true",
                        help="upload each to where it was meant to go, replacing what is "
                        "there, then remove it from the folder (one that fails stays)")
    action.add_argument("--discard", action="store_true",
                        help="delete each from the folder, for good")
    unsaved.add_argument("--all", action="store_true",
                         help="every kept file (with --store or --discard)")
    unsaved.add_argument("--mount-option", action="append", default=[],
                         metavar="PROTOCOL.KEY=VALUE",
                         help="a storage option for --store, as for run --mount-option "
                         "(an endpoint, FTP credentials) (repeatable)")
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


def _parse_layers(args: argparse.Namespace) -> list[tuple[str, Definition]]:
    """--quota and --audit as layers, the audit on top so it logs what the quota refused."""
    from .layers import audit_layer, quota_layer

    layers: list[tuple[str, Definition]] = []
    if args.quota is not None:
        layers.append(("quota", quota_layer(*parse_quota(args.quota))))
    if args.audit is not None:
        try:
            layers.append(("audit", audit_layer(args.audit)))
        except ValueError as exc:
            raise MountError(f"--audit: {exc}") from None
    return layers


_INT_BITS = {"i32": 32, "i64": 64}


def _invoke_args(func: str, params: Sequence[wasmtime.ValType],
                 words: Sequence[str]) -> list[int | float]:
    """``words`` as the wasm values the export ``func`` takes: i32 and i64 whole numbers
    within their range, signed or unsigned (decimal or 0x hexadecimal), f32 and f64 any
    number. A word that does not fit is an error naming the parameter, never wrapped."""
    if len(words) != len(params):
        raise MountError(f"--invoke {func} takes {len(params)} argument(s), got {len(words)}")
    values: list[int | float] = []
    for number, (kind, word) in enumerate(zip(params, words, strict=True), 1):
        name = str(kind)
        where = f"--invoke {func}: parameter {number} ({name})"
        if name in _INT_BITS:
            bits = _INT_BITS[name]
            try:
                value = int(word, 0)
            except ValueError:
                try:
                    value = int(word, 10)  # 010 is ten, not an error
                except ValueError:
                    raise MountError(f"{where} takes a whole number, got {word!r}") from None
            if not -(1 << (bits - 1)) <= value < 1 << bits:
                raise MountError(f"{where} takes {-(1 << (bits - 1))} to {(1 << bits) - 1}, "
                                 f"got {word}")
            values.append(value - (1 << bits) if value >= 1 << (bits - 1) else value)
        elif name in ("f32", "f64"):
            try:
                values.append(float(word))
            except ValueError:
                raise MountError(f"{where} takes a number, got {word!r}") from None
        else:
            raise MountError(f"{where}: virtwasi cannot pass a {name} from the command line")
    return values


_WASM_MAGIC = b"\0asm"


def _module_problem(module: Path) -> str | None:
    """Why ``module`` cannot be a module (one line naming the fix), or None: a .wasm
    binary, or WebAssembly text (which wasmtime runs too)."""
    if module.is_dir():
        return (f"{module} is a directory, not a module: give the .wasm file (serve a "
                f"folder to the guest with --dir {module})")
    if not module.is_file():
        return f"no such module file: {module}"
    try:
        with module.open("rb") as file:
            if file.read(4) == _WASM_MAGIC:
                return None
        text = module.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = None
    except OSError as exc:
        return f"{module}: {exc.strerror}"
    if text is not None:
        try:
            wasmtime.wat2wasm(text)
            return None
        except wasmtime.WasmtimeError as exc:
            if module.suffix == ".wat":
                first = (str(exc).strip().splitlines() or ["?"])[0]
                return f"{module}: not valid WebAssembly text: {first}"
    return (f"{module} is not a wasm module (neither a .wasm binary nor WebAssembly text): "
            "give the compiled .wasm file")


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
    return list(args.args)


def _flags_run(args: argparse.Namespace) -> RunPlan:
    from .worldfiles.plan import WorldOptions

    if args.module is None:
        raise MountError("run: give MODULE.wasm, or --world WORLD.toml")
    mounts = parse_mounts(args)
    world = WorldOptions(mounts=mounts or None, read_only=read_only_paths(args, mounts),
                         semantics=Semantics(args.semantics or Semantics.COMPONENT_MODEL),
                         layers=_parse_layers(args), impl=args.impl or "virtual")
    return Path(args.module), _guest_args(args), world, parse_env(args)


_NOT_WITH_WORLD = ("dir", "mount", "mount_option", "ro", "overlay", "impl", "quota", "audit")


def _world_run(args: argparse.Namespace, argv: Sequence[str] = ()) -> RunPlan:
    """The run a world file describes, as the command line adjusts it (see RUN_EPILOG)."""
    from .worldfiles.plan import WorldFileError, load

    for name in _NOT_WITH_WORLD:
        if getattr(args, name):
            raise WorldFileError(f"--{name.replace('_', '-')} cannot be used with --world: "
                                 "the world file says what serves the module")
    plan = load(args.world)
    guest = _guest_args(args)
    module = None if args.module is None else Path(args.module)
    # The first word after -- is MODULE to argparse; with a world file it is an ARG.
    if module is not None and args.after_dashes:
        module, guest = None, [str(args.module), *guest]
    if module is None:
        if plan.module is None:
            raise WorldFileError(f"{plan.path}: [run] module: missing; give it there or as "
                                 "MODULE.wasm before --")
        module, guest = plan.module, [*plan.args, *guest]
    return module, guest, plan.world_options(args.semantics), parse_env(args, base=plan.env)


def _tracer(args: argparse.Namespace) -> Tracer | None:
    """The trace --trace and --trace-format ask for: stderr, or a file written afresh."""
    if args.trace is None and args.trace_format is None:
        return None
    path = args.trace or "-"
    return Tracer(sys.stderr if path == "-" else path, args.trace_format or "text")


def _option(command: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    """The option ``word`` names (``--opt``, ``--opt=V``, ``-SV``, or a unique prefix of a
    long option, as argparse allows), or None."""
    actions = command._option_string_actions
    name = word.partition("=")[0]
    if name in actions:
        return actions[name]
    if not word.startswith("--") and word[:2] in actions:
        return actions[word[:2]]  # a short option with its value attached: -Sinherit-env
    if word.startswith("--"):
        found = {actions[s] for s in actions if s.startswith(name)}
        if len(found) == 1:
            return found.pop()
    return None


def _pull_env(command: argparse.ArgumentParser, head: Sequence[str]
              ) -> tuple[list[str], list[str]]:
    """``head`` (the option words before MODULE) without its ``--env`` options, and their
    values in order. A ``--env`` with no value after it (or an option) is kept, for
    argparse to refuse."""
    env_action = command._option_string_actions.get("--env")
    rest: list[str] = []
    env: list[str] = []
    i = 0
    while i < len(head):
        word = head[i]
        action = _option(command, word) if word.startswith("-") else None
        takes_next = (action is not None and action.nargs is None and "=" not in word
                      and (word.startswith("--") or len(word) == 2))
        if action is env_action and action is not None and word.startswith("--"):
            if "=" in word:
                env.append(word.partition("=")[2])
                i += 1
                continue
            if i + 1 < len(head) and not head[i + 1].startswith("-"):
                env.append(head[i + 1])
                i += 2
                continue
        step = 2 if takes_next else 1
        rest.extend(head[i:i + step])
        i += step
    return rest, env


def _module_at(command: argparse.ArgumentParser, words: Sequence[str]) -> tuple[int, bool]:
    """Where MODULE is among a command's ``words`` (``len(words)`` if absent), and whether
    a ``--`` came right before it. Options come before MODULE, and a ``--`` ends them; a
    bare ``--trace`` never takes a value (a PATH is given as ``--trace=PATH``)."""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return i + 1, True
        if not word.startswith("-") or word == "-":
            return i, False
        action = _option(command, word)
        takes_next = (action is not None and action.nargs is None and "=" not in word
                      and (word.startswith("--") or len(word) == 2))
        i += 2 if takes_next else 1
    return i, False


def _parse(parser: argparse.ArgumentParser, argv: list[str]
           ) -> tuple[argparse.Namespace, list[str]]:
    """The parsed arguments, and ``argv`` as parsed.

    For ``run``, ``diff`` and ``map`` every word after MODULE is the guest's, as it is (a ``--``
    too, as wasmtime passes it): argparse sees only the words up to MODULE, and
    ``args.args`` is the rest. ``args.after_dashes`` says whether MODULE followed a
    ``--`` (with a world file, that word is the guest's first ARG)."""
    commands = _commands(parser)
    if argv[:1] and argv[0] not in commands and not argv[0].startswith("-") and (
            argv[0].endswith((".wasm", ".wat")) or Path(argv[0]).is_file()):
        argv = ["run", *argv]  # virtwasi prog.wasm ARGS: virtwasi run prog.wasm ARGS
    if argv[:1] not in (["run"], ["diff"], ["map"]):
        return parser.parse_args(argv), argv
    words = argv[1:]
    at, after_dashes = _module_at(commands[argv[0]], words)
    head = [("--trace=-" if word == "--trace" else word) for word in words[:at]]
    spelled = [argv[0], *head, *words[at:at + 1]]
    # argparse's cost grows with the square of the options given: the --env words, which
    # may be many thousands, are taken out first, in one pass.
    rest, env = _pull_env(commands[argv[0]], head)
    args = parser.parse_args([argv[0], *rest, *words[at:at + 1]])
    args.env = env
    args.args = list(words[at + 1:])
    args.after_dashes = after_dashes
    return args, spelled + args.args


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """Run the guest with SIGINT and SIGTERM ending it, never Python: from parsing to the
    end of teardown, a signal is recorded and the guest stopped; teardown always finishes,
    so what the guest wrote and closed is stored."""
    from .engine import interrupt

    unsaved: list[Unsaved] = []
    _recover_spills()
    with interrupt.catching(interrupt.DEFAULT_SIGNALS) as signals:
        # A signal during teardown is recorded and ignored: the exit code stays the guest's.
        code = _run_guest(args, argv, signals.received if signals is not None else [],
                          unsaved)
    return _report_unsaved(unsaved, code)


def _report_unsaved(unsaved: Sequence[Unsaved], code: int) -> int:
    """One line per file whose written data could not be stored; a run that would have
    succeeded fails (1) then, and a failure keeps its own code."""
    for item in unsaved:
        print(f"virtwasi: {item}", file=sys.stderr, flush=True)
    return 1 if unsaved and code == 0 else code


def _recover_spills() -> None:
    """Keep and report, one line each, what processes killed while writing to a remote
    mount left (one directory listing when there is none)."""
    from .storage.unsaved import recover_spills

    try:
        recovered = recover_spills()
    except OSError as exc:
        print(f"virtwasi: cannot keep what a killed run left: {exc}", file=sys.stderr)
        return
    for item in recovered:
        print(f"virtwasi: {item}", file=sys.stderr, flush=True)


def _unsaved(args: argparse.Namespace) -> int:
    from .storage import unsaved

    _recover_spills()
    folder = unsaved.unsaved_folder()
    files = unsaved.kept_files()
    if (args.store or args.discard) and not args.paths and not args.all:
        return _fail("unsaved: give the PATHs to " + ("store" if args.store else "discard")
                     + ", or --all (see virtwasi unsaved --help)")
    if args.paths:
        chosen = []
        for given in args.paths:
            where = Path(given).expanduser().absolute()
            matched = [f for f in files if f.path.absolute().is_relative_to(where)]
            if not matched:
                return _fail(f"unsaved: {given}: not a file kept in {folder} "
                             "(virtwasi unsaved lists them)")
            chosen += [f for f in matched if f not in chosen]
        files = chosen
    if args.store:
        try:
            options = mount_options(args)
        except MountError as exc:
            return _fail(str(exc))
        failed = 0
        for kept in files:
            problem = _store_kept(kept, options)
            if problem:
                print(f"virtwasi: {kept.path}: not stored: {problem}", file=sys.stderr)
                failed += 1
            else:
                unsaved.forget(kept.path)
                print(f"stored {kept.path} in {kept.url}")
        return 1 if failed else 0
    if args.discard:
        for kept in files:
            unsaved.forget(kept.path)
            print(f"discarded {kept.path}")
        return 0
    if not files:
        print(f"nothing kept in {folder}")
        return 0
    import time

    for kept in files:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(kept.kept_at))
        reason = f" ({kept.reason})" if kept.reason else ""
        print(f"{kept.path}: for {kept.url or 'an unrecorded destination'}, "
              f"{kept.size} bytes, kept {when}{reason}")
    return 0


def _store_kept(kept: KeptFile, options: Mapping[str, dict[str, Any]]) -> str | None:
    """Upload one kept file to its URL; why not, in a few words, or None once stored."""
    if kept.url is None:
        return "where it was meant to go was not recorded"
    from .storage.fsspec_storage import release_filesystem
    from .storage.network import chain_protocols, open_url

    given = {protocol: opts for protocol, opts in options.items()
             if protocol in chain_protocols(kept.url)}
    try:
        fs, target, _ = open_url(kept.url, given)
    except ImportError as exc:
        return str(exc)
    except Exception as exc:  # fsspec backends raise whatever their libraries raise
        return f"{type(exc).__name__}: {exc}"
    try:
        fs.put_file(str(kept.path), target)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        release_filesystem(fs)
    return None


@contextmanager
def _collecting_unsaved(session: Session, unsaved: list[Unsaved]) -> Iterator[None]:
    """Entered before the session, so that its exit sees the session closed."""
    try:
        yield
    finally:
        unsaved.extend(session.host.unsaved)


def _signal_stop(signum: int) -> GuestStopped:
    from .runtime import GuestInterrupted

    return GuestInterrupted(signum)


def _stopped(stop: GuestStopped) -> int:
    print(f"virtwasi: {stop}", file=sys.stderr, flush=True)
    return stop.exit_code


def _run_guest(args: argparse.Namespace, argv: Sequence[str], received: list[int],
               unsaved: list[Unsaved]) -> int:
    from .engine import interrupt
    from .layers.audit import AuditLogError
    from .runtime import GuestStopped, Session

    try:
        module, guest_args, world, env = (_world_run(args, argv) if args.world
                                          else _flags_run(args))
    except ValueError as exc:  # MountError, WorldFileError: one line for the user
        return _fail(str(exc))
    problem = _module_problem(module)
    if problem:
        return _fail(problem)
    try:
        tracer = _tracer(args)
    except OSError as exc:
        return _fail(f"--trace: {exc.strerror}: {args.trace}")
    try:
        session = Session(module, guest_args, **world, env=env, stdin=sys.stdin.buffer,
                          stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
                          program_name=args.argv0, on_compile=_compiling_note(module),
                          trace=tracer, timeout=args.timeout, fuel=args.fuel,
                          max_memory=args.max_memory, signals=interrupt.DEFAULT_SIGNALS)
    except GuestStopped as stop:
        return _stopped(stop)
    except MountError as exc:
        return _fail(f"{args.world}: {exc}" if args.world else str(exc))
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"{module}: not a runnable WASI module: {first}")
    except (ValueError, OSError, LinkError) as exc:
        return _fail(f"{module}: {exc}")
    code = 1
    try:
        with _collecting_unsaved(session, unsaved), session:
            code = _in_session(session, args, module, guest_args, received)
    except AuditLogError as exc:  # the guest ran; only its log was lost
        print(f"virtwasi: --audit: {exc}", file=sys.stderr)
        return code or 1
    return code


def _in_session(session: Session, args: argparse.Namespace, module: Path,
                guest_args: Sequence[str], received: list[int]) -> int:
    from .client import memory_problem
    from .runtime import TRAP_EXIT_CODE, GuestExit, GuestStopped, GuestTrap

    if received:  # a signal while compiling or opening the mounts: do not start
        return _stopped(_signal_stop(received[0]))
    problem = None if session.module is None else memory_problem(session.module)
    if problem:
        return _fail(f"{module}: {problem}")
    if not args.invoke:
        try:
            return session.start()
        except GuestStopped as stop:
            return _stopped(stop)
        except ValueError as exc:
            return _fail(f"{module}: {exc}")
    from .component.client import ComponentClient

    if isinstance(session, ComponentClient):
        return _invoke_component(session, args.invoke, module, guest_args)
    try:
        func = session.exports.get(args.invoke)
        if not isinstance(func, wasmtime.Func):
            names = sorted(n for n, v in session.exports.items()
                           if isinstance(v, wasmtime.Func))
            return _fail(f"{module}: the module exports no function named "
                         f"{args.invoke!r} (it exports: {', '.join(names) or 'none'})")
        numbers = _invoke_args(args.invoke, func.type(session.store).params, guest_args)
    except MountError as exc:
        return _fail(str(exc))
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


def _invoke_component(session: ComponentClient, name: str, module: Path,
                      guest_args: Sequence[str]) -> int:
    """``--invoke`` of a component's function: each argument read as its parameter's
    type asks, the result printed as JSON."""
    from .component.text import value_as_json, values_from_text
    from .runtime import TRAP_EXIT_CODE, GuestExit, GuestStopped, GuestTrap

    try:
        params, result_shape = session.signature(name)
        values = values_from_text(params, guest_args)
        result = session.call(name, *values)
    except GuestStopped as stop:
        return _stopped(stop)
    except GuestExit as exit_:
        return exit_.code
    except GuestTrap as trap:
        print(f"Error: {trap}", file=sys.stderr)
        return TRAP_EXIT_CODE
    except (ValueError, TypeError) as exc:
        return _fail(f"{module}: {exc}")
    if result_shape is not None:
        print(value_as_json(result))
    return 0


def _map(args: argparse.Namespace) -> int:
    from .batch.command import run_map

    _recover_spills()
    try:
        return run_map(args)
    except ValueError as exc:  # MountError: one line for the user, nothing run
        return _fail(str(exc))


def _diff(args: argparse.Namespace) -> int:
    from .compare import diff

    module = Path(args.module)
    problem = _module_problem(module) or _command_problem(module)
    if problem:
        return _fail(problem)
    tree = Path(args.tree) if args.tree else None
    if tree is not None and not tree.is_dir():
        return _fail(f"--tree: no such folder: {tree}")
    try:
        env = parse_env(args, inherit=False)
        stdin = Path(args.stdin).read_bytes() if args.stdin else b""
        runtimes = args.runtime or diff.default_runtimes()
        for name in runtimes:
            diff.runner(name)
    except (MountError, ValueError, ImportError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--stdin: {exc.strerror}: {exc.filename}")
    guest_args = args.args
    try:
        comparison = diff.compare(module, guest_args, runtimes=runtimes, env=env, stdin=stdin,
                                  prepare=diff.copier(tree) if tree else None)
    except ValueError as exc:  # a runtime that cannot take this run (wasmer: a symlink)
        return _fail(str(exc))
    print(diff.report(comparison), end="")
    return 0 if comparison.same else 1


def _command_problem(module: Path) -> str | None:
    """Why ``module`` is not a WASI command ``diff`` can run (one line), or None."""
    from .client import memory_problem
    from .component import ComponentReadError, read_component
    from .component.client import is_component

    if is_component(module):
        try:
            exports = read_component(module.read_bytes()).exports
        except ComponentReadError as exc:
            return f"{module}: {exc}"
        if not any(e.name.startswith("wasi:cli/run@") for e in exports):
            return (f"{module} exports no wasi:cli/run: it is not a WASI command (its "
                    "functions are called with virtwasi run --invoke FUNC)")
        return None
    try:
        compiled = wasmtime.Module.from_file(wasmtime.Engine(), str(module))
    except wasmtime.WasmtimeError as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        return f"{module}: not a runnable WASI module: {first}"
    if not any(e.name == "_start" and isinstance(e.type, wasmtime.FuncType)
               for e in compiled.exports):
        return (f"{module} exports no _start function: it is not a WASI command (a reactor's "
                "exports are called with virtwasi run --invoke FUNC)")
    problem = memory_problem(compiled)
    return f"{module}: {problem}" if problem else None


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
    if args.command == "unsaved":
        return _unsaved(args)
    if args.command == "map":
        return _map(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
