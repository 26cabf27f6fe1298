"""The suite's version, in a module of its own so that recording it imports nothing else."""

VERSION = "0.1.0"
