"""What long host-side work shows on the terminal (:mod:`.progress`). It imports nothing
else of virtwasi, so storage and engine alike may use it."""
