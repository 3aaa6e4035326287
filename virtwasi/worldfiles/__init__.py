"""World files: the TOML description of a world (:mod:`.plan`, its keys checked in
:mod:`.keys`), and its drawing as text (:mod:`.graph`) or as a picture (:mod:`.svg`)."""
