"""What a batch runs: its items (one per input) and the plan every item follows.

An input is a URL or a host path. A spec given as text names inputs the way a shell or
fsspec would: a glob (``s3://in/*.svg``, ``data/**/*.txt``), a folder or an archive
(``zip::file://a.zip``: every file in it, at any depth, in name order), or one file. A list
is taken as it is, one input per entry, without asking the store anything.

Each item's words (arguments, mount sources, output guest paths and URLs, environment
values) are templates: ``{path}`` (the input as a URL, or an absolute host path), ``{name}``
(its last component), ``{stem}`` (the name without its last suffix) and ``{index}`` (its
place in the batch, from 0), with Python's format specs (``{index:05d}``); ``{{`` and
``}}`` are braces.

A mount is read-only in a batch, since every item sees it, unless it is private to the item:
a ``mem://`` tree (the default ``/``), or an overlay whose upper layer is one. What an item
writes stays in its private trees until it succeeds; its outputs (``--output``) are then
published from there (see :mod:`.outputs`).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..storage.mounts import (
    MountError,
    MountSource,
    Overlay,
    Remote,
    anchored,
    check_guest_path,
)

FIELDS = ("path", "name", "stem", "index")


@dataclasses.dataclass(frozen=True)
class Item:
    """One input of a batch: its ``index`` and its ``path`` (a URL, or a host path)."""

    index: int
    path: str

    @property
    def name(self) -> str:
        """The input's last component (of the innermost file, in a chained URL)."""
        first = self.path.split("::", 1)[0]
        return PurePosixPath(first.split("://", 1)[-1]).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    def fields(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "stem": self.stem, "index": self.index}


def check_template(text: str, where: str) -> None:
    """Refuse a template with a field other than :data:`FIELDS`, or a stray brace."""
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise MountError(f"{where}: {exc} (write {{{{ and }}}} for braces)") from None
    for name in names:
        if name not in FIELDS:
            raise MountError(f"{where}: unknown field {{{name}}} (there are: "
                             + ", ".join(f"{{{f}}}" for f in FIELDS)
                             + "; write {{ and }} for braces)")


def expand(text: str, item: Item) -> str:
    """``text`` with ``item``'s fields filled in (checked by :func:`check_template`)."""
    return text.format_map(item.fields())


def expand_url(text: str, item: Item, folder: str) -> str:
    """A URL or host path with ``item``'s fields filled in, a relative host path taken
    from ``folder`` (where the batch was started, wherever the item runs)."""
    return anchored(expand(text, item), Path(folder))


def expand_source(source: MountSource, item: Item, folder: str) -> MountSource:
    """A mount source with ``item``'s fields filled in, wherever it holds text, and its
    relative host paths taken from ``folder``."""
    if isinstance(source, str):
        return expand_url(source, item, folder)
    if isinstance(source, Path):
        return Path(folder, expand(str(source), item))
    if isinstance(source, Remote):
        return Remote(expand_url(source.url, item, folder), source.options)
    if isinstance(source, Overlay):
        return Overlay(expand_source(source.lower, item, folder),
                       expand_source(source.upper, item, folder))
    return source


def _source_texts(source: MountSource) -> list[str]:
    if isinstance(source, str | Path):
        return [str(source)]
    if isinstance(source, Remote):
        return [source.url]
    if isinstance(source, Overlay):
        return _source_texts(source.lower) + _source_texts(source.upper)
    raise MountError(f"a batch mount is a URL, a path, Remote or Overlay, not "
                     f"{type(source).__name__}: each item opens its own mounts")


def is_private(source: MountSource) -> bool:
    """Whether a mount of ``source`` is the item's own: a fresh ``mem://`` tree, or an
    overlay whose changes go to one."""
    if isinstance(source, str):
        return source in ("mem:", "mem://") or source.startswith(("mem://?", "mem:?"))
    if isinstance(source, Overlay):
        return is_private(source.upper)
    return False


@dataclasses.dataclass(frozen=True)
class Output:
    """A file or folder the guest writes at ``guest``, published to ``url`` (a folder's
    files under ``url/``, at their paths in it) once the item has succeeded."""

    guest: str
    url: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every item of a batch runs (each of its words a template): the guest's
    ``args`` after argv[0] (``program_name``), ``env``, ``mounts`` (``/`` a fresh
    ``mem://`` unless given), ``read_only`` guest paths, the item's input served alone
    at ``input_at``/{name} (read-only; None: not served), ``outputs``, ``storage_options``
    for input and output URLs (by protocol, as ``--mount-option`` gives them), the limits
    per item (``timeout``, ``fuel``, ``max_memory``, ``quota`` as (bytes, inodes)),
    ``retries`` of a storage step that failed with ``EIO``, ``keep_output``, the bytes
    of stdout and of stderr the results keep (half from the start, half from the end), and
    the ``folder`` relative host paths are taken from (where the batch was started)."""

    program_name: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[tuple[str, MountSource], ...] = ()
    read_only: tuple[str, ...] = ()
    input_at: str | None = "/in"
    outputs: tuple[Output, ...] = ()
    storage_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    timeout: float | None = None
    fuel: int | None = None
    max_memory: int | None = None
    quota: tuple[int | None, int | None] | None = None
    retries: int = 2
    keep_output: int = 4096
    folder: str = "/"

    def check(self) -> None:
        """Refuse, in one line, what no item could run: a bad template, a guest path
        mounted twice, an output outside the item's private trees, an overlay whose
        changes would be shared."""
        for n, arg in enumerate(self.args, 1):
            check_template(arg, f"argument {n} ({arg!r})")
        for key, value in self.env:
            if not key or "=" in key:
                raise MountError(f"env: {key!r} is not a variable name (empty, or holds '=')")
            check_template(value, f"env {key}")
        guests = [guest for guest, _ in self.mounts]
        if self.input_at is not None:
            guests.append(check_guest_path(self.input_at))
        if len({check_guest_path(g) for g in guests}) != len(guests):
            raise MountError(f"two mounts at one guest path among: {', '.join(guests)}"
                             + (f" (the input is served at {self.input_at})"
                                if self.input_at is not None else ""))
        for guest, source in self.mounts:
            for text in _source_texts(source):
                check_template(text, f"mount {guest}")
            if isinstance(source, Overlay) and not is_private(source):
                raise MountError(f"overlay {guest}: its changes would be shared by every "
                                 "item; an item's writes stay in its own tree (an upper "
                                 "layer of mem://)")
        for output in self.outputs:
            check_template(output.guest, f"output {output.guest}")
            check_template(output.url, f"output {output.guest}")

    def mount_sources(self) -> dict[str, MountSource]:
        """The mounts as given, with the private in-memory ``/`` when none covers it."""
        mounts = dict(self.mounts)
        return mounts if "/" in mounts else {"/": "mem://", **mounts}

    def shared(self) -> list[str]:
        """The guest paths every item sees the same: served read-only."""
        return [guest for guest, source in self.mounts if not is_private(source)]

    def private_tree_of(self, guest: str) -> str | None:
        """The mount an output at ``guest`` lands in, if it is one of the item's private
        trees (None: a shared mount, or the input's, which are read-only)."""
        guest = check_guest_path(guest)
        served = [*self.mount_sources(), *([self.input_at] if self.input_at else [])]
        holder = max((m for m in served if guest == m or guest.startswith(m.rstrip("/") + "/")),
                     key=len)
        source = self.mount_sources().get(holder)
        return holder if source is not None and is_private(source) else None


def inputs_of(specs: Iterable[str], options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every input the text ``specs`` name (see the module doc), in order, each once."""
    found: dict[str, None] = {}
    for spec in specs:
        for url in _expand_spec(spec, options):
            found.setdefault(url)
    return list(found)


def options_for(url: str, options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The storage options for the protocols ``url``'s chain uses, under their names."""
    if not options:
        return {}
    from ..storage.network import chain_protocols

    chain = chain_protocols(url)
    return {protocol: dict(opts) for protocol, opts in options.items() if protocol in chain}


def _expand_spec(spec: str, options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    from ..storage.network import open_url

    spec = anchored(spec, Path.cwd())
    try:
        fs, root, _ = open_url(spec, options_for(spec, options))
    except (ImportError, ValueError) as exc:
        raise MountError(f"input {spec}: {exc}") from None
    try:
        if any(c in root for c in "*?["):
            listed = fs.glob(root, detail=True)
            paths = sorted(p for p, info in listed.items() if info.get("type") == "file")
        elif fs.isdir(root) or not root.strip("/"):
            paths = sorted(fs.find(root))
        elif fs.isfile(root):
            paths = [root]
        else:
            raise MountError(f"input {spec}: no such file or folder")
    except MountError:
        raise
    except Exception as exc:  # fsspec backends raise whatever their libraries raise
        raise MountError(f"input {spec}: cannot list it: {type(exc).__name__}: {exc}") from None
    return [_url_of(spec, fs, path) for path in paths]


def _url_of(spec: str, fs: Any, path: str) -> str:
    """The URL of ``path`` of ``fs``, which ``spec`` opened: a host path as it is; in a
    chain (an archive's member), the member's URL over the rest of the chain."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    if "::" in spec:
        rest = spec.split("::", 1)[1]
        return f"{protocols[0]}://{path.lstrip('/')}::{rest}"
    if {"file", "local"} & set(protocols):
        return path
    return str(fs.unstrip_protocol(path))
