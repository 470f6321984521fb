"""Benchmarks: ingest and query cost as the corpus grows."""
