"""The bundled corpus: the vision text and its manifest (sources.toml)."""
