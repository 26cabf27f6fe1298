"""Test helper: make a training run die in its second epoch, as a Ctrl-C would."""

import pytest

from defenses.training import trainer


def train_until_interrupted(job, monkeypatch) -> None:
    """Run `job` and interrupt it when the second epoch's validation starts (state of epoch 1 saved)."""
    real_validate, calls = trainer.validate, {"n": 0}

    def validate_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", validate_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(job)
    monkeypatch.setattr(trainer, "validate", real_validate)
