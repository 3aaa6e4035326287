"""Storage options for fsspec filesystems that talk to a server.

Their libraries are patient by default (s3fs and botocore retry for a minute or more, an
HTTP read may wait five minutes), which a guest would see as a hang. virtwasi asks for short
timeouts and few retries instead, so that a dead or silent server is ``EIO`` in seconds.
These are defaults only: fsspec's own configuration (``FSSPEC_S3_...`` variables, its config
files) and options given with a mount take precedence, key by key.
"""

from __future__ import annotations

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


def open_url(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The filesystem and path of ``url``, with virtwasi's defaults under ``options``. A
    protocol whose library is not installed is an ``ImportError`` naming the extra."""
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options(url, options))
    except ImportError as exc:
        extras = sorted({EXTRAS[p] for p in chain_protocols(url) if p in EXTRAS})
        hint = f": pip install 'virtwasi[{','.join(extras)}]'" if extras else ""
        what = f"{exc.name} is not installed" if exc.name else str(exc).rstrip(".")
        raise ImportError(what + hint) from None
    tune(fs)
    return fs, root
