"""Every registered defense trains on real Fashion-MNIST and on a tiny CIFAR-shaped set, and reloads."""


import pytest
import torch

from bench.errors import BenchError
from defenses import DEFENSES
from defenses.training import checkpoints, trainer
from tests.interrupt import train_until_interrupted

ADVERSARIAL = [n for n in DEFENSES.names() if n != "standard"]
# Short runs: CLAF needs one epoch per stage; everything else two epochs of a few batches.
CLAF_STAGES = {"aug_epochs": 1, "linear_epochs": 1}
IBP_AT_ONCE = {"warmup_epochs": 0, "ramp_epochs": 0}  # the bound's loss at full ε from the first step


def _overrides(name: str, **extra):
    over = {"epochs": 3 if name == "claf" else 2, "batch_size": 32, "attack_steps": 2, **extra}
    if name == "claf":
        over["params"] = CLAF_STAGES
    if name == "ibp":
        over["params"] = IBP_AT_ONCE
    return over


@pytest.mark.parametrize("name", DEFENSES.names())
def test_each_defense_lowers_its_loss_on_a_fixed_batch(name, fmnist_test):
    """A few optimizer steps on one batch must lower that batch's loss (same random draws)."""
    job = trainer.resolve_job(name, "fashion-mnist", _overrides(name, lr=0.01), quiet=True)
    method = trainer.build_method(job, steps_per_epoch=8)
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.01, momentum=0.9)
    x, y = fmnist_test.batch(slice(0, 64))
    epoch = 1  # CLAF's adversarial stage

    def batch_loss(step: bool) -> float:
        loss = method.loss(x, y, torch.Generator().manual_seed(0), epoch)
        if step:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            method.after_step()
        return float(loss.detach())

    method.train()
    before = batch_loss(step=False)
    for _ in range(8):
        batch_loss(step=True)
    assert batch_loss(step=False) < before


@pytest.mark.parametrize("name", DEFENSES.names())
def test_each_defense_writes_a_checkpoint_and_sidecar_that_reload(name, tmp_path):
    job = trainer.resolve_job(name, "fashion-mnist", _overrides(name), tmp_path / f"{name}.pt", quiet=True,
                              max_train_points=96, val_points=32, max_batches=2)
    sidecar = trainer.train(job)
    model, meta = checkpoints.load(tmp_path / f"{name}.pt")
    entry = DEFENSES.get(name)
    assert meta == sidecar and meta["paper"] == entry.paper and meta["variant"] == entry.variant
    if entry.params is not None:
        assert set(meta["hyperparameters"]) == {f for f in entry.params.__dataclass_fields__}
    assert meta["recipe"]["eps"] == (0.1 if name != "standard" else 0.0)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert not (tmp_path / f"{name}.train-state.pt").exists()


def test_afd_records_its_start_and_update_rule(tmp_path, natural_ckpt):
    job = trainer.resolve_job("afd", "fashion-mnist", _overrides("afd", init=str(natural_ckpt)),
                              tmp_path / "afd.pt", quiet=True, max_train_points=64, val_points=32, max_batches=1)
    meta = trainer.train(job)
    assert meta["method"]["init_sha256"] == checkpoints.sha256_file(natural_ckpt)
    assert "two-optimizer" in meta["method"]["update"]


def test_afd_refuses_a_start_of_another_architecture(tmp_path, natural_ckpt):
    with pytest.raises(BenchError, match="smallcnn-cos"):
        trainer.train(trainer.resolve_job("afd", "fashion-mnist",
                                          _overrides("afd", init=str(natural_ckpt), arch="smallcnn-cos"),
                                          tmp_path / "x.pt", quiet=True, max_train_points=32))


def test_methods_refuse_architectures_they_cannot_train(tmp_path):
    with pytest.raises(BenchError, match="reverse-attention"):
        trainer.train(trainer.resolve_job("ancra", "fashion-mnist", {"arch": "smallcnn"}, tmp_path / "x.pt",
                                          quiet=True, max_train_points=32))
    with pytest.raises(BenchError, match="cosine-head"):
        trainer.train(trainer.resolve_job("spat", "fashion-mnist", {"arch": "smallcnn"}, tmp_path / "x.pt",
                                          quiet=True, max_train_points=32))
    with pytest.raises(BenchError, match="Did you mean: zeta"):
        trainer.resolve_job("ancra", "fashion-mnist", {"params": {"zeat": "1"}}, tmp_path / "x.pt")


@pytest.mark.parametrize("name", ["afd", "claf", "ancra", "ibp"])
def test_interrupted_training_of_stateful_methods_resumes_to_the_same_weights(name, tmp_path, monkeypatch):
    """EMA (AFD), a second optimizer and stages (CLAF), the RA model (ANCRA), the ε ramp's step count (IBP)
    all survive a resume."""
    over = _overrides(name, **({"params": {"warmup_epochs": 0, "ramp_epochs": 2}} if name == "ibp" else {}))

    def job(out, **kw):
        return trainer.resolve_job(name, "fashion-mnist", over, out, quiet=True,
                                   max_train_points=64, val_points=16, max_batches=2, **kw)

    trainer.train(job(tmp_path / "straight.pt"))
    train_until_interrupted(job(tmp_path / "resumed.pt"), monkeypatch)
    trainer.train(job(tmp_path / "resumed.pt", resume=True))
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_defense_runs_its_cifar10_recipe_on_resnet18(tiny_cifar, tmp_path):
    """The paper recipes (ε = 8/255, augmentation, schedules) for a couple of steps each, ResNet-18."""
    natural = tmp_path / "natural.pt"
    trainer.train(trainer.resolve_job("standard", "cifar10", {"epochs": 1, "batch_size": 8}, natural,
                                      data_dir=tiny_cifar, quiet=True, val_points=4, max_batches=1))
    arch_for = {"ancra": "resnet18-ra", "ancra-pgd": "resnet18-ra", "ancra-mart": "resnet18-ra",
                "spat": "resnet18-cos"}
    for name in [n for n in ADVERSARIAL if "cifar10" in DEFENSES.get(n).recipes]:
        recipe = DEFENSES.get(name).recipes["cifar10"]
        assert recipe.eps == pytest.approx(8 / 255)
        over = _overrides(name, batch_size=8, arch=arch_for.get(name, "resnet18"),
                          init=str(natural) if recipe.init else None)
        over["epochs"] = 3 if name == "claf" else 1
        out = tmp_path / f"{name}.pt"
        meta = trainer.train(trainer.resolve_job(name, "cifar10", over, out, data_dir=tiny_cifar, quiet=True,
                                                 val_points=4, max_batches=1))
        model, _ = checkpoints.load(out)
        assert meta["dataset"] == "cifar10" and model(torch.rand(2, 3, 32, 32)).shape == (2, 10), name
