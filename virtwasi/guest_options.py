"""The options ``virtwasi run`` and ``virtwasi map`` share, declared once: what a guest is
given (its argv[0], environment and mounts) and what bounds it (a quota, a timeout, fuel,
memory), with their parsing into what :class:`~virtwasi.runtime.Session` takes. A mistake in
one is a :class:`~virtwasi.storage.mounts.MountError` (a ValueError) whose message is one
line for the user; a malformed limit is refused by argparse itself.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .storage.mounts import (
    MountError,
    MountSource,
    Overlay,
    Remote,
    guest_path,
    parse_dir,
    parse_mount,
    parse_mount_option,
    parse_overlay,
)


def add_guest_options(command: argparse.ArgumentParser) -> None:
    """--argv0, the mounts (--dir, --mount, --mount-option, --ro, --overlay) and the
    environment (--env, --inherit-env, -S)."""
    command.add_argument("--argv0", metavar="NAME",
                         help="the guest's argv[0] (default: MODULE's file name)")
    command.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                         help="serve a host folder at GUEST (default: the same path; a relative "
                         "one is taken from /, so --dir . serves the folder at /)")
    command.add_argument("--mount", action="append", default=[], metavar="GUEST=URL",
                         help="serve a host folder or any fsspec URL at the absolute guest path "
                         "GUEST (repeatable; one source per guest path)")
    command.add_argument("--mount-option", action="append", default=[],
                         metavar="PROTOCOL.KEY=VALUE",
                         help="a storage option for every --mount whose URL uses PROTOCOL, e.g. "
                         "s3.endpoint_url=http://127.0.0.1:9000; VALUE is JSON if it parses, "
                         "else a string (repeatable)")
    command.add_argument("--ro", action="append", default=[], metavar="GUEST",
                         help="serve the mount at GUEST read-only (repeatable)")
    command.add_argument("--overlay", action="append", default=[], metavar="GUEST[=UPPER_URL]",
                         help="serve the mount at GUEST copy-on-write: its source becomes the "
                         "read-only lower layer and writes go to UPPER_URL (default: a private "
                         "in-memory tree) (repeatable)")
    command.add_argument("--env", action="append", default=[], metavar="NAME[=VAL]",
                         help="an environment variable for the guest; a bare NAME passes this "
                         "process's value, if it has one (repeatable)")
    command.add_argument("--inherit-env", action="store_true",
                         help="pass this process's environment to the guest (--env wins)")
    command.add_argument("-S", action="append", default=[], metavar="OPT[=VAL]", dest="wasi",
                         help="a WASI option, as wasmtime spells them: -S inherit-env is "
                         "--inherit-env (comma-separated; the only one virtwasi takes)")


def add_limit_options(command: argparse.ArgumentParser) -> None:
    """--quota, --timeout, --fuel and --max-memory."""
    command.add_argument("--quota", metavar="BYTES[:INODES]",
                         help="refuse growth of the tree past BYTES (K, M, G suffixes) and "
                         "INODES with EDQUOT: a quota layer stacked on the implementation")
    command.add_argument("--timeout", metavar="SECONDS", type=seconds,
                         help="stop the guest after SECONDS of wall clock (exit 124)")
    command.add_argument("--fuel", metavar="N", type=fuel,
                         help="stop the guest once it has used N units of fuel, about one per "
                         "wasm instruction (exit 152)")
    command.add_argument("--max-memory", metavar="BYTES", type=max_memory,
                         help="let the guest's linear memory grow to BYTES at most (K, M, G "
                         "suffixes; exit 137 when it ends for want of more)")


_YES, _NO = ("", "y", "yes", "true", "1"), ("n", "no", "false", "0")


def inherits_env(args: argparse.Namespace) -> bool:
    """--inherit-env, or wasmtime's ``-S inherit-env[=y|n]``; other -S options are refused."""
    inherit = bool(args.inherit_env)
    for spec in getattr(args, "wasi", []):
        for item in spec.split(","):
            name, _, value = item.partition("=")
            if name != "inherit-env" or value.lower() not in _YES + _NO:
                raise MountError(f"-S {item}: virtwasi takes only -S inherit-env[=y|n] of "
                                 "wasmtime's WASI options")
            inherit = value.lower() in _YES
    return inherit


def parse_env(args: argparse.Namespace, inherit: bool | None = None,
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The guest's environment: this process's if inherited, then ``base``, then --env
    (a bare ``--env NAME`` passes this process's NAME, if set, as wasmtime does)."""
    env = dict(os.environ) if (inherits_env(args) if inherit is None else inherit) else {}
    env.update(base or {})
    for item in args.env:
        key, sep, val = item.partition("=")
        if not key:
            raise MountError(f"--env wants NAME[=VAL], got {item!r}")
        if sep:
            env[key] = val
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


def mount_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """--mount-option as fsspec takes storage options: under each protocol's name."""
    options: dict[str, dict[str, Any]] = {}
    for spec in args.mount_option:
        protocol, key, value = parse_mount_option(spec)
        options.setdefault(protocol, {})[key] = value
    return options


def with_options(url: str, options: Mapping[str, dict[str, Any]],
                 used: set[str]) -> MountSource:
    """``url``, with the --mount-option of the protocols its chain uses, if any."""
    if not options:
        return url
    from .storage.network import chain_protocols  # fsspec, only when options need it

    chain = set(chain_protocols(url)) if "://" in url or "::" in url else set()
    given = {protocol: opts for protocol, opts in options.items() if protocol in chain}
    used.update(given)
    return Remote(url, given) if given else url


def parse_mounts(args: argparse.Namespace, other_urls: Iterable[str] = (),
                 others: str = "") -> dict[str, MountSource]:
    """--dir, --mount (with --mount-option) and --overlay, each at a normalised guest
    path; two sources at one guest path are an error. ``other_urls`` (named ``others`` in
    a message: "input or output") use --mount-option too: an option no URL uses is an
    error."""
    mounts: dict[str, MountSource] = {}
    given: dict[str, str] = {}
    options = mount_options(args)
    used: set[str] = set()
    for url in other_urls:
        with_options(url, options, used)

    def add(guest: str, source: MountSource, spec: str) -> None:
        if guest in mounts:
            raise MountError(f"{given[guest]} and {spec} both mount at {guest}: give each "
                             "source its own guest path")
        mounts[guest], given[guest] = source, spec

    for spec in args.dir:
        guest, host = parse_dir(spec)
        add(guest, Path(host), f"--dir {spec}")
    for spec in args.mount:
        guest, url = parse_mount(spec)
        add(guest, with_options(url, options, used), f"--mount {spec}")
    for spec in args.overlay:
        guest, upper = parse_overlay(spec)
        if guest not in mounts:
            raise MountError(f"--overlay {guest}: nothing is mounted there")
        mounts[guest] = Overlay(mounts[guest], with_options(upper, options, used))
    unused = sorted(set(options) - used)
    if unused:
        where = f"--mount {others + ' ' if others else ''}URL"
        raise MountError(f"--mount-option {unused[0]}.*: no {where} uses {unused[0]}:// "
                         f"(as --mount /data={unused[0]}://...)")
    return mounts


def read_only_paths(args: argparse.Namespace, mounts: Mapping[str, MountSource]) -> list[str]:
    """--ro's guest paths, normalised as mounts are, each naming a mount."""
    paths = []
    for spec in args.ro:
        try:
            guest = guest_path(spec)
        except MountError as exc:
            raise MountError(f"--ro {spec}: {exc}") from None
        if guest not in (mounts or {"/": "mem://"}):
            where = ", ".join(sorted(mounts)) or "/ (the default in-memory tree)"
            raise MountError(f"--ro {spec}: nothing is mounted there (mounted: {where})")
        paths.append(guest)
    return paths


_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(size: str) -> int:
    """BYTES with an optional K, M or G suffix; KeyError or ValueError if malformed."""
    number = size.rstrip("KMGkmg")
    value = int(number) * _SIZE_SUFFIXES[size[len(number):].upper()]
    if value < 0:
        raise ValueError(size)
    return value


def parse_quota(text: str) -> tuple[int | None, int | None]:
    """--quota's BYTES[:INODES] (either may be left out) as the quota layer takes them."""
    size, _, inodes = text.partition(":")
    try:
        return (parse_size(size) if size else None,
                _at_least_zero(int(inodes)) if inodes else None)
    except (KeyError, ValueError):
        raise MountError(f"--quota wants BYTES[:INODES], whole numbers of at least 0 "
                         f"(BYTES may end in K, M or G), got {text!r}") from None


def _at_least_zero(value: int) -> int:
    if value < 0:
        raise ValueError(value)
    return value


def max_memory(text: str) -> int:
    try:
        return parse_size(text)
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"want BYTES, a whole number that may end in K, M or G, got {text!r}") from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"want a number of seconds above 0, got {text!r}")
    return value


def fuel(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 0, got {text!r}")
    return value


