"""Benchmarks: scripts that print numbers. Run them with ``python -m bench.<name>``; see docs/benchmarks.md."""
