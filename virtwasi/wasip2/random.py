"""``wasi:random``: the secure source, the insecure one and its seed, all from the host's
``os.urandom`` as preview 1's ``random_get``. As wasmtime, a request of more than 64 MiB at
once traps, and the insecure seed is drawn once per component instance."""

from __future__ import annotations

import os

from ..component.hosting import HostInterface
from ..component.values import Trap

MAX_RANDOM_BYTES = 64 << 20


def random_bytes(length: int) -> bytes:
    if length > MAX_RANDOM_BYTES:
        raise Trap(f"{length} random bytes asked for at once: the limit is {MAX_RANDOM_BYTES}")
    return os.urandom(length)


def random_u64() -> int:
    return int.from_bytes(os.urandom(8), "little")


def interfaces() -> dict[str, HostInterface]:
    seed = (random_u64(), random_u64())
    return {
        "wasi:random/random": HostInterface(
            {"get-random-bytes": random_bytes, "get-random-u64": random_u64}),
        "wasi:random/insecure": HostInterface(
            {"get-insecure-random-bytes": random_bytes, "get-insecure-random-u64": random_u64}),
        "wasi:random/insecure-seed": HostInterface({"insecure-seed": lambda: seed}),
    }
