"""Storage options for fsspec filesystems that talk to a server.

Their libraries are patient by default (s3fs and botocore retry for a minute or more, an
HTTP read may wait five minutes), which a guest would see as a hang. virtwasi asks for short
timeouts and few retries instead, so that a dead or silent server is ``EIO`` in seconds.
These are defaults only: fsspec's own configuration (``FSSPEC_S3_...`` variables, its config
files) and options given with a mount take precedence, key by key.

fsspec's listings-cache options (``use_listings_cache``, ``listings_expiry_time``) given to
a mount set how long the mount trusts what it learned of the store
(:mod:`.metadata`), and the filesystem opened for it keeps no cache of its own, so that
one cache with one rule answers.
"""

from __future__ import annotations

import math
from typing import Any

import fsspec
import fsspec.config
import fsspec.core
from fsspec.core import split_protocol

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 5
ATTEMPTS = 2  # a request is tried at most this many times


def default_options(protocol: str) -> dict[str, Any]:
    """virtwasi's defaults for one fsspec protocol (empty for local ones)."""
    if protocol in ("s3", "s3a"):
        return {
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
                "retries": {"mode": "standard", "total_max_attempts": ATTEMPTS},
            },
        }
    if protocol == "ftp":
        # One control connection per mount: a shared cached one dies for all at once.
        return {"timeout": READ_TIMEOUT_S, "skip_instance_cache": True}
    if protocol in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
        return {"client_kwargs": {"timeout": timeout}}
    return {}


def chain_protocols(url: str) -> list[str]:
    """The protocols of a (chained) URL, outermost first: ``zip::s3://b/a.zip`` gives
    ``["zip", "s3"]``."""
    protocols = []
    for bit in url.split("::"):
        protocol = split_protocol(bit)[0] if "://" in bit else bit
        protocols.append(protocol or "file")
    return protocols


def storage_options(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``fsspec.core.url_to_fs(url, ...)``: ``options`` as fsspec takes
    them (for the outermost filesystem, or under a protocol's name for any in the chain),
    over fsspec's configuration, over virtwasi's defaults."""
    merged: dict[str, Any] = dict(options or {})
    for protocol in chain_protocols(url):
        defaults = default_options(protocol)
        if defaults:
            configured = fsspec.config.conf.get(protocol, {})
            given = merged.get(protocol, {})
            merged[protocol] = {**defaults, **configured, **given}
    return merged


def tune(fs: Any) -> None:
    """Give up quickly in s3fs too: on top of botocore's attempts it retries timeouts
    itself, five times by default with growing waits. ``fs`` may wrap others (a cache)."""
    seen: set[int] = set()
    while fs is not None and id(fs) not in seen:
        seen.add(id(fs))
        protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
        if {"s3", "s3a"}.intersection(protocols):
            fs.retries = 1  # one round of botocore's attempts
        fs = getattr(fs, "fs", None)


# The package extra that brings each protocol's library (fsspec imports them on demand).
EXTRAS = {"s3": "s3", "s3a": "s3", "http": "http", "https": "http"}


LISTINGS_OPTIONS = ("use_listings_cache", "listings_expiry_time")


def _ttl(use: Any, expiry: Any) -> float | None:
    """Seconds a listing is trusted (None: for good, 0: not at all), from fsspec's options."""
    if use is False or (isinstance(use, str) and use.strip().lower() in ("false", "0", "no")):
        return 0.0
    if expiry is None:
        return None
    try:
        ttl = float(expiry)
    except (TypeError, ValueError):
        ttl = math.nan
    if not ttl >= 0:
        raise ValueError(f"listings_expiry_time must be seconds (0 or more), got {expiry!r}")
    return ttl


def listings_ttl(fs: Any) -> float | None:
    """How long ``fs``'s own listings cache trusts a listing (see :func:`_ttl`)."""
    cache = getattr(fs, "dircache", None)
    return _ttl(getattr(cache, "use_listings_cache", True),
                getattr(cache, "listings_expiry_time", None))


def _take_listings_options(url: str, merged: dict[str, Any]) -> float | None:
    """Take fsspec's listings options for ``url``'s outermost filesystem out of ``merged``
    (given at the top, under its protocol's name, or in fsspec's configuration), turn that
    filesystem's own cache off, and answer how long the mount trusts a listing."""
    protocol = chain_protocols(url)[0]
    under = dict(merged.get(protocol, {}))
    configured = fsspec.config.conf.get(protocol, {})
    found = {key: merged.pop(key, under.pop(key, configured.get(key)))
             for key in LISTINGS_OPTIONS}
    merged[protocol] = {**under, "use_listings_cache": False}
    return _ttl(found["use_listings_cache"], found["listings_expiry_time"])


def open_url(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str, float | None]:
    """The filesystem and path of ``url``, with virtwasi's defaults under ``options``, and
    how long a mount of it trusts what it learns of the store (seconds; None: as long as
    it is mounted). A protocol whose library is not installed is an ``ImportError``
    naming the extra; bad listings options are a ``ValueError``."""
    try:
        merged = storage_options(url, options)
        ttl = _take_listings_options(url, merged)
        fs, root = fsspec.core.url_to_fs(url, **merged)
    except ImportError as exc:
        extras = sorted({EXTRAS[p] for p in chain_protocols(url) if p in EXTRAS})
        hint = f": pip install 'virtwasi[{','.join(extras)}]'" if extras else ""
        what = f"{exc.name} is not installed" if exc.name else str(exc).rstrip(".")
        raise ImportError(what + hint) from None
    tune(fs)
    return fs, root, ttl
