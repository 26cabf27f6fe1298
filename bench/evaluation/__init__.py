"""Running attacks over a model: the run configuration, resolving defenses and committed
checkpoints into models and attack contexts, the harness, sweep planning, external
evaluations, inspection (application layer)."""
