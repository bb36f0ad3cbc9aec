"""Benchmarks, run by hand: `./run bench` prints one table."""
