import pytest
import torch
from torch import nn

from bench.errors import ModelGuardError
from bench.loading.guards import check_input_range, preflight
from bench.loading.model import ModelUnderTest


class Linear(nn.Module):
    def __init__(self, classes: int = 10, softmax: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(784, classes)
        self.softmax, self.dropout = softmax, dropout

    def forward(self, x):
        out = self.fc(nn.functional.dropout(x.flatten(1), self.dropout, training=self.dropout > 0))
        return out.softmax(1) if self.softmax else out


X = torch.rand(16, 1, 28, 28)


def test_probabilities_instead_of_logits_are_refused():
    with pytest.raises(ModelGuardError, match="probabilities"):
        preflight(ModelUnderTest(Linear(softmax=True), 10), X)


def test_randomized_model_is_refused_unless_allowed():
    model = ModelUnderTest(Linear(dropout=0.5), 10)
    with pytest.raises(ModelGuardError, match="randomized"):
        preflight(model, X)
    assert any("randomized" in w for w in preflight(model, X, allow_randomized=True))


def test_wrong_number_of_classes_is_refused():
    with pytest.raises(ModelGuardError, match="returns 7 classes but the dataset has 10"):
        preflight(ModelUnderTest(Linear(classes=7), 10), X)


def test_inputs_outside_unit_range_are_refused():
    with pytest.raises(ModelGuardError, match=r"\[0, 1\]"):
        check_input_range((X - 0.5) / 0.25)


def test_attack_mode_forces_eval_and_frozen_weights_then_restores():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Dropout(0.5))
    model = ModelUnderTest(net, 10)
    model.train()
    with model.attack_mode():
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_forward_and_backward_passes_are_counted_per_example():
    model = ModelUnderTest(Linear(), 10)
    x = X.clone().requires_grad_(True)
    model(x).sum().backward()
    with torch.no_grad():
        model(X[:4])
    assert (model.passes.forward, model.passes.backward) == (20, 16)
    model.predict(X)  # bookkeeping forwards are not attack passes
    assert model.passes.forward == 20


def test_normalization_inside_the_wrapper():
    model = ModelUnderTest(nn.Flatten(), 784, mean=[0.5], std=[0.25])
    assert torch.allclose(model(torch.full((1, 1, 28, 28), 0.75)), torch.ones(1, 784))
