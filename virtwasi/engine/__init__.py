"""The wasm engine seam: wasmtime-py, driven through its fast unchecked host-call path."""

from .raw import HostFunc, TrapBox, define, memory_view

__all__ = ["HostFunc", "TrapBox", "define", "memory_view"]
