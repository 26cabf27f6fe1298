"""Robustness benchmarking harness: attacks, evaluation, run records and the `bench` CLI."""

__version__ = "0.1.0"
