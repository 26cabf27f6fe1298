"""Getting a model to attack: model files and their untrusted-file checks, RobustBench's zoo,
the wrapped `ModelUnderTest` and its guards (core layer)."""
