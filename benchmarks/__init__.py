"""Benchmark scripts: each runs as ``python -m benchmarks.NAME`` from the repository root."""
