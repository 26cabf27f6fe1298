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


def _diverging(monkeypatch, times):
    """PGD-AT whose loss is NaN at the first batch of epoch 2, the first `times` times it gets there."""
    from defenses.pgd_at import PGDAT

    honest, seen = PGDAT.loss, []

    def diverges_in_epoch_two(self, x, y, gen, epoch):
        loss = honest(self, x, y, gen, epoch)
        if epoch == 1 and len(seen) < times:
            seen.append(epoch)
            return loss * float("nan")
        return loss

    monkeypatch.setattr(PGDAT, "loss", diverges_in_epoch_two)


def test_a_run_that_keeps_diverging_stops_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    """A NaN loss is never stepped on; after the rule's MAX_BACKOFFS roll-backs the run stops and the
    resume state stays the last finished epoch's (a full-budget TRADES run once trained 12 epochs of NaN
    weights before this guard)."""
    _diverging(monkeypatch, times=99)
    out = tmp_path / "d.pt"
    with pytest.raises(BenchError, match="diverged in epoch 2, batch 1 .* after epoch 1 is kept .*halved 3 times"):
        trainer.train(_job(out))
    state = torch.load(out.with_suffix(".train-state.pt"), weights_only=True)
    assert state["progress"]["epoch"] == 1 and not out.exists()
    assert [b["lr_scale"] for b in state["progress"]["backoffs"]] == [0.5, 0.25, 0.125]
    assert all(torch.isfinite(t).all() for t in state["method"].values() if t.is_floating_point())


def test_a_divergence_rolls_back_one_epoch_and_halves_the_learning_rate(tmp_path, monkeypatch):
    """The divergence rule: back to the state after epoch 1, epoch 2 retrained at half the lr; the
    sidecar records it. Epoch 1 is the same as in an undisturbed run."""
    plain = trainer.train(_job(tmp_path / "plain.pt"))
    _diverging(monkeypatch, times=1)
    sidecar = trainer.train(_job(tmp_path / "d.pt"))
    assert sidecar["lr_backoffs"] == [{"epoch": 2, "batch": 1, "lr_scale": 0.5}] and plain["lr_backoffs"] == []
    assert sidecar["history"][0] == plain["history"][0]
    assert sidecar["history"][1]["lr"] == pytest.approx(plain["history"][1]["lr"] / 2)
