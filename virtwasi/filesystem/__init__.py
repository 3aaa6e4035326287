"""The implementation interface (shaped like ``wasi:filesystem@0.2``) and its errors."""
