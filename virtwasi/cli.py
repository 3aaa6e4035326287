"""The ``virtwasi`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, scenario

DESCRIPTION = """\
virtwasi runs WebAssembly modules built for WASI preview 1 with their files served by a WASI
written as an unprivileged library instance, and demonstrates, scenario by scenario, why
private resource types, handle tables, destructors and instance teardown give that library
the same powers as a native implementation.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtwasi",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"virtwasi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scen = commands.add_parser(
        "scenario",
        help="list or run the narrated demonstrations",
        description="Each scenario prints a narrated transcript and exits non-zero if the "
        "claim it demonstrates does not hold.",
    )
    scen_cmds = scen.add_subparsers(dest="action", metavar="ACTION")
    scen_cmds.add_parser("list", help="name and summary of every scenario")
    run = scen_cmds.add_parser("run", help="run one scenario, or all of them with --all")
    run.add_argument("name", nargs="?", help="scenario name, as `scenario list` shows it")
    run.add_argument("--all", action="store_true", help="run every scenario in turn")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "scenario":
        return _scenario(args, parser)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
