"""The values of a world file's keys: each checked, with a one-line error naming the key.

A check takes the TOML value and the world file's folder (relative paths are relative to it)
and returns the value to use, or raises :class:`Invalid`. :class:`At` applies checks to the
keys of one table and puts the table and key in front of any error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from ..storage.mounts import MountSource, Overlay, Remote, anchored

T = TypeVar("T")
D = TypeVar("D")
Check = Callable[[Any, Path], T]


class Invalid(ValueError):
    """A value a world file cannot have; ``key`` is the path below the checked key, if any."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class At:
    """One table of a world file (``table`` is its TOML name, "" for the top level).

    The errors of a ``nested`` table (one inside a key's value) carry the key path below
    the outer key, for its :class:`At` to put in front."""

    table: str
    data: Mapping[str, Any]
    nested: bool = False

    def invalid(self, key: str | None, message: str) -> Invalid:
        if self.nested:
            return Invalid(message, f".{key}" if key else "")
        where = " ".join(part for part in (self.table and f"[{self.table}]", key) if part)
        return Invalid(f"{where}: {message}" if where else message)

    def only(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                raise self.invalid(key, f"unknown key (known here: {', '.join(sorted(known))})")

    @overload
    def get(self, key: str, check: Check[T], folder: Path) -> T: ...
    @overload
    def get(self, key: str, check: Check[T], folder: Path, default: D) -> T | D: ...

    def get(self, key: str, check: Check[T], folder: Path, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.invalid(key, "missing")
            return default
        try:
            return check(self.data[key], folder)
        except Invalid as exc:
            if self.nested:
                raise Invalid(str(exc), f".{key}{exc.key}") from None
            raise self.invalid(key + exc.key, str(exc)) from None


def string(value: Any, folder: Path) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {_toml(value)}")
    return value


def string_list(value: Any, folder: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f"expected a list of strings, got {_toml(value)}")
    return list(value)


def string_table(value: Any, folder: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table of strings, got {_toml(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise Invalid(f"expected a string, got {_toml(item)}", f".{key}")
    return dict(value)


def table(value: Any, folder: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table, got {_toml(value)}")
    return value


def count(value: Any, folder: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"expected a whole number of at least 0, got {_toml(value)}")
    return value


def path_in(value: Any, folder: Path) -> Path:
    """A host path; a relative one is relative to the world file's folder."""
    return folder / string(value, folder)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


@dataclass(frozen=True)
class MountPlan:
    """One mount: what serves it, and how the world file wrote it."""

    source: MountSource
    written: str


def mount_table(value: Any, folder: Path) -> dict[str, MountPlan]:
    """``{ GUEST = URL, GUEST = { url = URL, options = {...} },
    GUEST = { lower = URL, upper = URL } }``"""
    if not isinstance(value, dict):
        raise Invalid(f"expected a table of GUEST = URL, got {_toml(value)}")
    plans = {}
    for guest, source in value.items():
        key = f'."{guest}"'
        if not guest.startswith("/"):
            raise Invalid("a guest path must start with /", key)
        try:
            plans[guest] = _mount(source, folder)
        except Invalid as exc:
            raise Invalid(str(exc), key + exc.key) from None
    return plans


def _mount(value: Any, folder: Path) -> MountPlan:
    if isinstance(value, str):
        return MountPlan(anchored(value, folder), value)
    if not isinstance(value, dict):
        raise Invalid(f"expected a URL or a table, got {_toml(value)}")
    at = At("", value, nested=True)
    if "url" in value:
        at.only({"url", "options"})
        url = at.get("url", string, folder)
        options = at.get("options", table, folder, default={})
        if not options:
            return MountPlan(anchored(url, folder), url)
        return MountPlan(Remote(anchored(url, folder), options), url)
    if "lower" in value:
        at.only({"lower", "upper"})
        lower = at.get("lower", string, folder)
        upper = at.get("upper", string, folder, default="mem://")
        return MountPlan(Overlay(anchored(lower, folder), anchored(upper, folder)),
                         f"{lower} under {upper}")
    raise Invalid("give url = URL, or lower = URL (and upper = URL) for an overlay")
