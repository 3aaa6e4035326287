"""The wasm engine seam: wasmtime-py, driven through its fast unchecked host-call path."""

from .cache import cache_dir, compile_component, compile_module
from .raw import HostFunc, TrapBox, caller_memory, define, memory_view

__all__ = ["HostFunc", "TrapBox", "cache_dir", "caller_memory", "compile_component",
           "compile_module", "define", "memory_view"]
