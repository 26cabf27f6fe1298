"""The trainer: sidecar contents, held-out selection, and resume to identical weights."""

import json

import pytest
import torch

from bench.errors import BenchError
from defenses.training import checkpoints, trainer
from tests.interrupt import train_until_interrupted

SMALL = {"epochs": 2, "batch_size": 64, "attack_steps": 2}


def _job(out, **kwargs):
    return trainer.resolve_job("pgd-at", "fashion-mnist", SMALL, out, quiet=True, max_train_points=320,
                               val_points=64, **kwargs)


def test_training_writes_a_verified_checkpoint_and_sidecar(tmp_path):
    sidecar = trainer.train(_job(tmp_path / "m.pt"))
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk == sidecar and sidecar["sha256"] == checkpoints.sha256_file(tmp_path / "m.pt")
    assert sidecar["recipe"]["epochs"] == 2 and sidecar["recipe"]["eps"] == 0.1
    assert "never the test set" in sidecar["selection"]["source"]
    assert len(sidecar["history"]) == 2 and sidecar["provenance"]["versions"]["torch"]
    model, meta = checkpoints.load(tmp_path / "m.pt")
    assert meta["arch"] == "smallcnn" and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    trainer.train(_job(tmp_path / "straight.pt"))

    train_until_interrupted(_job(tmp_path / "resumed.pt"), monkeypatch)
    with pytest.raises(BenchError, match="--resume"):
        trainer.train(_job(tmp_path / "resumed.pt"))
    trainer.train(_job(tmp_path / "resumed.pt", resume=True))

    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_defense_and_missing_recipe_are_clear_errors(tmp_path):
    with pytest.raises(BenchError, match="Did you mean: pgd-at"):
        trainer.resolve_job("pgd_at", "fashion-mnist", {}, tmp_path / "x.pt")
    with pytest.raises(BenchError, match="unknown dataset|no recipe"):
        trainer.resolve_job("pgd-at", "tiny-imagenet", {}, tmp_path / "x.pt")


@pytest.mark.parametrize("edit", [
    lambda p: p.update(epoch=7), lambda p: p.update(epoch=-1), lambda p: p.update(epoch=True),
    lambda p: p["history"].pop(), lambda p: p["history"][0].update(epoch=5),
    lambda p: p.update(best={"epoch": 3, "robust": 1.0}), lambda p: p.update(seconds=float("inf")),
    lambda p: p.pop("best_state")],
    ids=["epoch-beyond", "epoch-negative", "epoch-bool", "history-short", "history-renumbered", "best-unfinished",
         "seconds-inf", "best-state-missing"])
def test_an_edited_training_state_is_refused(tmp_path, monkeypatch, edit):
    """A state whose progress no run of this job could have written: refused, never trained on."""
    out = tmp_path / "m.pt"
    train_until_interrupted(_job(out), monkeypatch)
    state_file = out.with_suffix(".train-state.pt")
    state = torch.load(state_file, weights_only=True)
    edit(state["progress"])
    torch.save(state, state_file)
    with pytest.raises(BenchError, match="does not fit this job"):
        trainer.train(_job(out, resume=True))


def test_a_diverging_run_stops_at_once_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    """A NaN loss stops training before any step with it; the resume state stays the last finished
    epoch's (a full-budget TRADES run once trained 12 epochs of NaN weights before this guard)."""
    from defenses.pgd_at import PGDAT

    honest = PGDAT.loss

    def diverges_in_epoch_two(self, x, y, gen, epoch):
        loss = honest(self, x, y, gen, epoch)
        return loss * float("nan") if epoch == 1 else loss

    monkeypatch.setattr(PGDAT, "loss", diverges_in_epoch_two)
    out = tmp_path / "d.pt"
    with pytest.raises(BenchError, match="diverged in epoch 2, batch 1 .* after epoch 1 is kept"):
        trainer.train(_job(out))
    state = torch.load(out.with_suffix(".train-state.pt"), weights_only=True)
    assert state["progress"]["epoch"] == 1 and not out.exists()
    assert all(torch.isfinite(t).all() for t in state["method"].values() if t.is_floating_point())
