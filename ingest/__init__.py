"""Ingest: load files, repair Japanese text, chunk by structure, index into Chroma + BM25."""
