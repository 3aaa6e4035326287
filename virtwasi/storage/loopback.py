"""Local servers on 127.0.0.1 for trying the network mounts without a network.

Each context manager starts one server on a free port in a thread of this process, yields
the URL to mount, and stops the server on exit:

* :func:`s3_server` is an S3 endpoint (moto); :func:`s3_filesystem` is an s3fs client for it
  and :func:`s3_environment` the variables that point ``virtwasi run --mount /=s3://...``
  at it;
* :func:`ftp_server` serves a host folder over FTP (pyftpdlib), with a user and password;
* :func:`http_server` serves a host folder over HTTP (the standard library), with byte
  ranges, so files are read at random offsets as from any web server;
* :func:`counting_proxy` stands in front of any of these HTTP endpoints (S3's included) and
  records every request it forwards, to count what a client asks of a server.

moto and pyftpdlib come with the ``loopback`` extra: ``pip install 'virtwasi[loopback]'``.
moto keeps every bucket in this process's memory, shared by all its servers; nothing is
written to disk and nothing outside 127.0.0.1 is contacted.
"""

from __future__ import annotations

import email.utils
import http.client
import http.server
import logging
import os
import secrets
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .network import default_options

HOST = "127.0.0.1"
S3_KEY = "virtwasi-test"  # moto accepts any credentials; s3fs insists on having some
S3_SECRET = "virtwasi-test-secret"
S3_REGION = "us-east-1"
FTP_USER = "virtwasi"


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ImportError(
            f"{module} is needed for local test servers: pip install 'virtwasi[loopback]'"
        ) from None


# -- S3 ------------------------------------------------------------------------------------


@contextmanager
def s3_server(port: int = 0) -> Iterator[str]:
    """An S3 endpoint (``http://127.0.0.1:PORT``) for as long as the ``with`` lasts, on a free
    port unless given one (to bring a stopped endpoint back)."""
    _require("moto.server")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    requests = logging.getLogger("werkzeug")  # moto's web server logs every request
    level = requests.level
    requests.setLevel(logging.ERROR)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        requests.setLevel(level)


def s3_environment(endpoint: str) -> dict[str, str]:
    """The environment variables that point boto-based clients (s3fs) at ``endpoint``."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": S3_REGION,
    }


def s3_options(endpoint: str) -> dict[str, Any]:
    """s3fs storage options for ``endpoint``: test credentials, short timeouts, few retries."""
    return {
        **default_options("s3"),
        "endpoint_url": endpoint,
        "key": S3_KEY,
        "secret": S3_SECRET,
    }


def s3_filesystem(endpoint: str, *, fresh: bool = False) -> Any:
    """An s3fs filesystem for ``endpoint``; ``fresh`` gives a new client with empty caches
    (s3fs caches listings, so reading back what someone else wrote wants a fresh one)."""
    _require("s3fs")
    import fsspec

    return fsspec.filesystem("s3", skip_instance_cache=fresh, **s3_options(endpoint))


# -- FTP -----------------------------------------------------------------------------------


@contextmanager
def ftp_server(root: Path, *, password: str | None = None) -> Iterator[str]:
    """``root`` served over FTP as ``ftp://virtwasi:PASSWORD@127.0.0.1:PORT`` (full rights);
    the password is random unless given."""
    _require("pyftpdlib")
    with warnings.catch_warnings():  # pyftpdlib still imports asyncore, deprecated in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

    # Quiet, as the HTTP server is: pyftpdlib logs every connection at INFO.
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    password = password or secrets.token_hex(8)
    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, password, str(root), perm="elradfmwMT")
    handler = type("LoopbackFTPHandler", (FTPHandler,), {"authorizer": authorizer})
    # A private IO loop: pyftpdlib's default one is shared by every server in the process.
    server = FTPServer((HOST, 0), handler, ioloop=IOLoop())
    stop = threading.Event()

    def serve() -> None:
        try:
            while not stop.is_set():
                server.ioloop.loop(timeout=0.05, blocking=False)
        finally:
            server.close_all()

    thread = threading.Thread(target=serve, name="virtwasi-ftp", daemon=True)
    thread.start()
    try:
        host, port = server.address
        yield f"ftp://{FTP_USER}:{password}@{host}:{port}"
    finally:
        stop.set()
        thread.join()


# -- HTTP ----------------------------------------------------------------------------------


class _Slice:
    """The bytes of ``source`` from its position on, at most ``left`` of them."""

    def __init__(self, source: BinaryIO, left: int) -> None:
        self._source = source
        self._left = left

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._source.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._source.close()


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` as (first, last); None if unsatisfiable
    or not a single range of bytes."""
    unit, _, spec = header.partition("=")
    first_s, dash, last_s = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        return None
    try:
        if first_s:
            first, last = int(first_s), int(last_s) if last_s else size - 1
        else:
            first, last = max(size - int(last_s), 0), size - 1
    except ValueError:
        return None
    if first > last or first >= size:
        return None
    return first, min(last, size - 1)


class _RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """The standard file server, plus single byte ranges (RFC 9110) and no logging."""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the server is for tests and demos: keep their output clean

    def send_head(self) -> Any:
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if header is None or not os.path.isfile(path):
            return super().send_head()
        try:
            f = open(path, "rb")  # noqa: SIM115 (handed to the caller, who closes it)
        except OSError:
            self.send_error(404, "File not found")
            return None
        stat = os.fstat(f.fileno())
        wanted = _byte_range(header, stat.st_size)
        if wanted is None:
            f.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{stat.st_size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        first, last = wanted
        f.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{stat.st_size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Slice(f, last - first + 1)


@contextmanager
def http_server(root: Path) -> Iterator[str]:
    """``root`` served read-only as ``http://127.0.0.1:PORT/`` for as long as the ``with``
    lasts; a folder answers with a listing of links, as most web servers do."""

    def handler(*args: Any) -> _RangeRequestHandler:
        return _RangeRequestHandler(*args, directory=str(root))

    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="virtwasi-http", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- counting requests ---------------------------------------------------------------------

# Hop-by-hop headers (RFC 9110 7.6.1), and Expect, which the proxy answers itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "te", "trailer", "upgrade", "expect"})


class _ForwardingHandler(http.server.BaseHTTPRequestHandler):
    """Forwards each request, whole, to the server's ``target`` and records it."""

    protocol_version = "HTTP/1.1"  # keep-alive, as clients of object stores expect
    server: _CountingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._body()
        self.server.requests.append(f"{self.command} {self.path}")
        host, port = self.server.target
        upstream = http.client.HTTPConnection(host, port, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    upstream.putheader(key, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            data = response.read()
            self.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    target: tuple[str, int]


@contextmanager
def counting_proxy(target: str) -> Iterator[tuple[str, list[str]]]:
    """A proxy on a free port in front of the HTTP endpoint ``target``
    (``http://HOST:PORT``), for as long as the ``with`` lasts: yields its own endpoint and
    the list it appends every request to as it forwards it (``"GET /bucket?list-type=2..."``),
    in the order they came. Point a client at the proxy and count what it asked."""
    parts = urlsplit(target)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"a proxy forwards to http://HOST:PORT, not {target!r}")
    server = _CountingServer((HOST, 0), _ForwardingHandler)
    server.requests = []
    server.target = (parts.hostname, parts.port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="virtwasi-proxy", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
