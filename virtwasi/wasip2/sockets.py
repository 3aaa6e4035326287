"""``wasi:sockets``, answered as a host without network access answers.

A component gets its network handle (``instance-network``), and every use of it is refused
as wasmtime's built-in WASI 0.2 refuses it when the embedder grants no network: creating a
TCP or UDP socket is ``access-denied`` (wasmtime's answer with TCP and UDP disallowed), a
name lookup ``permanent-resolver-failure`` (its answer with lookups disallowed, the
default). So no socket, datagram stream or lookup stream ever exists: their methods are
served, for the component to link, but no handle can reach one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..component.hosting import HostInterface
from ..component.values import Err, Trap
from ..world import Context
from .io import Io

TCP_SOCKET_METHODS = (
    "start-bind", "finish-bind", "start-connect", "finish-connect", "start-listen",
    "finish-listen", "accept", "local-address", "remote-address", "is-listening",
    "address-family", "set-listen-backlog-size", "keep-alive-enabled",
    "set-keep-alive-enabled", "keep-alive-idle-time", "set-keep-alive-idle-time",
    "keep-alive-interval", "set-keep-alive-interval", "keep-alive-count",
    "set-keep-alive-count", "hop-limit", "set-hop-limit", "receive-buffer-size",
    "set-receive-buffer-size", "send-buffer-size", "set-send-buffer-size", "subscribe",
    "shutdown")
UDP_SOCKET_METHODS = (
    "start-bind", "finish-bind", "stream", "local-address", "remote-address",
    "address-family", "unicast-hop-limit", "set-unicast-hop-limit", "receive-buffer-size",
    "set-receive-buffer-size", "send-buffer-size", "set-send-buffer-size", "subscribe")


class Network:
    """What the ``network`` handle stands for: a capability that grants nothing."""


def _unreachable(resource: str) -> Callable[..., Any]:
    def method(*args: Any) -> Any:
        raise Trap(f"no {resource} exists on a host without network access")
    return method


def _methods(resource: str, names: tuple[str, ...]) -> dict[str, Callable[..., Any]]:
    return {f"[method]{resource}.{name}": _unreachable(resource) for name in names}


def interfaces(ctx: Context, io: Io) -> dict[str, HostInterface]:
    network = ctx.resource_type("network")
    tcp_socket = ctx.resource_type("tcp-socket")
    udp_socket = ctx.resource_type("udp-socket")
    incoming = ctx.resource_type("incoming-datagram-stream")
    outgoing = ctx.resource_type("outgoing-datagram-stream")
    lookups = ctx.resource_type("resolve-address-stream")
    denied = Err("access-denied")
    udp_types = {"pollable": io.pollable, "network": network, "udp-socket": udp_socket,
                 "incoming-datagram-stream": incoming, "outgoing-datagram-stream": outgoing}
    return {
        "wasi:sockets/network": HostInterface({}, {"network": network}),
        "wasi:sockets/instance-network": HostInterface(
            {"instance-network": lambda: ctx.resource_new(network, Network())},
            {"network": network}),
        "wasi:sockets/tcp": HostInterface(
            _methods("tcp-socket", TCP_SOCKET_METHODS),
            {"input-stream": io.input_stream, "output-stream": io.output_stream,
             "pollable": io.pollable, "network": network, "tcp-socket": tcp_socket}),
        "wasi:sockets/tcp-create-socket": HostInterface(
            {"create-tcp-socket": lambda family: denied},
            {"network": network, "tcp-socket": tcp_socket}),
        "wasi:sockets/udp": HostInterface(
            {**_methods("udp-socket", UDP_SOCKET_METHODS),
             **_methods("incoming-datagram-stream", ("receive", "subscribe")),
             **_methods("outgoing-datagram-stream", ("check-send", "send", "subscribe"))},
            udp_types),
        "wasi:sockets/udp-create-socket": HostInterface(
            {"create-udp-socket": lambda family: denied},
            {"network": network, "udp-socket": udp_socket}),
        "wasi:sockets/ip-name-lookup": HostInterface(
            {"resolve-addresses": lambda network, name: Err("permanent-resolver-failure"),
             **_methods("resolve-address-stream", ("resolve-next-address", "subscribe"))},
            {"pollable": io.pollable, "network": network, "resolve-address-stream": lookups}),
    }
