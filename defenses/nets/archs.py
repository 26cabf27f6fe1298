"""Architectures. Each takes [0,1] pixels and normalizes inside, so attacks work in pixel space.

Every backbone exposes the same anatomy so that defenses can reach inside without knowing the
network: `trunk` (everything before the last stage), `last_blocks` (the blocks ANCRA's reverse
attention replaces), `readout` (what turns a block output into features: identity, or the final
BN+ReLU of pre-activation nets), `pool` (features → vector), `embed` (the penultimate vector) and
`head` (the classifier, replaceable by a cosine head for SPAT).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.data import DatasetSpec
from bench.loading.model import Normalize
from bench.registry import Registry
from defenses.nets.pooling import MaxPool2x2

ArchFactory = Callable[[DatasetSpec], nn.Module]
# what a method that reaches inside the network needs (`Defense.arch_needs`)
BACKBONE_NEEDS = "a registered backbone architecture (trunk, embedding and linear head: smallcnn, resnet18, …)"
ARCHS: Registry[ArchFactory] = Registry("architecture")


def global_pool(z: torch.Tensor) -> torch.Tensor:
    """Global average pooling for feature maps; vectors pass through unchanged."""
    return z if z.dim() == 2 else z.mean(dim=(2, 3))


class Backbone(nn.Module):
    """The shared anatomy (see the module docstring); subclasses fill in the pieces."""

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def last_blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return h

    linear: nn.Module  # the classifier of the CIFAR-style nets (SmallCNN keeps its own layout)

    @property
    def head(self) -> nn.Module:
        return self.linear

    def set_head(self, head: nn.Module) -> None:
        self.linear = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        for block in self.last_blocks():
            h = block(h)
        return global_pool(self.readout(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class CosineLinear(nn.Module):
    """SPAT's cosine classifier: cos(feature, class weight) + bias, normalized functionally.

    The released code renormalizes the weight rows in place inside forward (a side effect that
    also fires during attacks); here the weights are only normalized on the fly. `scale` is the
    s used in training; the deployed logits are unscaled unless `scaled` is switched on, which
    is what an evaluation on the training scale does.
    """

    scale: torch.Tensor

    def __init__(self, in_features: int, out_features: int, scale: float = 8.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.scaled = False

    def cosine(self, f: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(f, dim=1), F.normalize(self.weight, dim=1)) + self.bias

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        c = self.cosine(f)
        return c * self.scale if self.scaled else c


class SmallCNN(Backbone):
    """The 4-conv / 3-fc CNN used for (Fashion-)MNIST in the TRADES line of work (28×28 inputs).

    Its "last stage" is the two hidden fully connected layers (200 units each). `fc_batchnorm`
    adds BatchNorm to them: the reverse-attention variant needs it, because RA multiplies the
    features by a class row of the head (entries ≈ ±1/√200) and, without a normalization in the
    next block (ResNet's BatchNorm plays that role), the signal shrinks ~14× per RA block.
    """

    def __init__(self, spec: DatasetSpec, fc_batchnorm: bool = False) -> None:
        super().__init__()
        c = spec.shape[0]
        self.normalize = Normalize(spec.mean, spec.std)
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), MaxPool2x2(),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), MaxPool2x2(),
        )

        def hidden(cin: int) -> list[nn.Module]:
            return [nn.Linear(cin, 200), *([nn.BatchNorm1d(200)] if fc_batchnorm else []), nn.ReLU()]

        self._block = 3 if fc_batchnorm else 2
        self.classifier = nn.Sequential(nn.Flatten(), *hidden(64 * 4 * 4), *hidden(200),
                                        nn.Linear(200, spec.num_classes))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(self.normalize(x)), 1)

    def layer_chain(self) -> nn.Sequential:
        """The layers forward runs, in order: what `bench certify` bounds (it checks they agree)."""
        return nn.Sequential(self.normalize, *self.features, *self.classifier)

    def last_blocks(self) -> list[nn.Module]:
        k = self._block
        return [self.classifier[1:1 + k], self.classifier[1 + k:1 + 2 * k]]

    @property
    def head(self) -> nn.Module:
        return self.classifier[-1]

    def set_head(self, head: nn.Module) -> None:
        self.classifier[len(self.classifier) - 1] = head


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Backbone):
    """CIFAR ResNet-18 (3×3 stem, no max-pool), as in the PGD-AT/TRADES/ANCRA experiments."""

    def __init__(self, spec: DatasetSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Sequential(nn.Conv2d(spec.shape[0], 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU())
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear: nn.Module = nn.Linear(512, spec.num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[:3](self.stem(self.normalize(x)))

    def last_blocks(self) -> list[nn.Module]:
        return list(self.layers[3].children())


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = torch.relu(self.bn2(self.conv1(out)))
        if self.drop > 0:
            out = F.dropout(out, self.drop, self.training)
        return self.conv2(out) + skip


class PreActResNet18(Backbone):
    """Pre-activation ResNet-18 (Rice et al.; ANCRA's Tiny-ImageNet net), global average pooling."""

    def __init__(self, spec: DatasetSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.conv1 = nn.Conv2d(spec.shape[0], 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear: nn.Module = nn.Linear(512, spec.num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[:3](self.conv1(self.normalize(x)))

    def last_blocks(self) -> list[nn.Module]:
        return list(self.layers[3].children())

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(h))


class WideResNet(Backbone):
    """WRN-depth-width (Zagoruyko & Komodakis) as used by TRADES/MART: WRN-34-10 and WRN-28-10."""

    def __init__(self, spec: DatasetSpec, depth: int = 34, width: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n+4")
        n = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.normalize = Normalize(spec.mean, spec.std)
        self.conv1 = nn.Conv2d(spec.shape[0], widths[0], 3, 1, 1, bias=False)
        groups, cin = [], widths[0]
        for cout, stride in zip(widths[1:], (1, 2, 2), strict=True):
            groups.append(nn.Sequential(*[PreActBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                          for i in range(n)]))
            cin = cout
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.linear: nn.Module = nn.Linear(widths[3], spec.num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(self.conv1(self.normalize(x))))
        return self.block3[:-2](h)

    def last_blocks(self) -> list[nn.Module]:
        return list(self.block3[-2:])

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(h))


def with_cosine_head(factory: Callable[[DatasetSpec], Backbone]) -> ArchFactory:
    """The same backbone with SPAT's cosine classifier in place of the linear head."""

    def build(spec: DatasetSpec) -> nn.Module:
        net = factory(spec)
        linear = net.head
        assert isinstance(linear, nn.Linear)
        net.set_head(CosineLinear(linear.in_features, linear.out_features))
        return net

    return build


def dm_small(spec: DatasetSpec) -> nn.Module:
    """The "small" CNN of the IBP paper (Gowal et al. 2018): two strided convolutions and one hidden
    dense layer, no pooling or normalization layers — a plain chain whose bounds stay tight, for
    certified training and `bench certify`."""
    c, h, w = spec.shape
    side = ((h - 4) // 2 + 1 - 3, (w - 4) // 2 + 1 - 3)  # after conv 4×4 stride 2, then conv 4×4 stride 1
    return nn.Sequential(Normalize(spec.mean, spec.std), nn.Conv2d(c, 16, 4, 2), nn.ReLU(), nn.Conv2d(16, 32, 4, 1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * side[0] * side[1], 100), nn.ReLU(),
                         nn.Linear(100, spec.num_classes))


def mlp(hidden: tuple[int, ...]) -> ArchFactory:
    """A fully connected ReLU network: small enough (with `mlp-2x64`) for `bench certify --method milp`
    to decide robustness exactly."""

    def build(spec: DatasetSpec) -> nn.Module:
        sizes = (math.prod(spec.shape), *hidden)
        layers: list[nn.Module] = [Normalize(spec.mean, spec.std), nn.Flatten()]
        for cin, cout in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(cin, cout), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(sizes[-1], spec.num_classes))

    return build


# plain chains for verification (`bench.verifier`, `bench certify`): no backbone anatomy, so methods that reach inside
# a network (ANCRA, SPAT, …) refuse them
ARCHS.add("dm-small", dm_small)
ARCHS.add("mlp-2x64", mlp((64, 64)))

BACKBONES: dict[str, Callable[[DatasetSpec], Backbone]] = {
    "smallcnn": SmallCNN,
    "resnet18": ResNet18,
    "preactresnet18": PreActResNet18,
    "wrn-34-10": lambda spec: WideResNet(spec, 34, 10),
    "wrn-28-10": lambda spec: WideResNet(spec, 28, 10),
}

for _name, _factory in BACKBONES.items():
    ARCHS.add(_name, _factory)
    ARCHS.add(f"{_name}-cos", with_cosine_head(_factory))


def is_user_factory(arch: str) -> bool:
    """`package.module:factory`: an architecture of the user's, named on the command line (never by a file)."""
    return ":" in arch


def build_arch(arch: str, spec: DatasetSpec) -> nn.Module:
    """A registered architecture for `spec`, or the user's factory called with no arguments; either
    must map a batch of the dataset's [0, 1] images to one logit per class."""
    if not is_user_factory(arch):
        return ARCHS.get(arch)(spec)
    from bench.errors import BenchError, first_line
    from bench.loading.sources import import_factory

    factory = import_factory(arch, "--arch")
    try:
        model = factory()
    except Exception as exc:  # the user's own code failed: say where, in one line
        raise BenchError(f"--arch {arch} raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise BenchError(f"--arch {arch} gave a {type(model).__name__}, not a torch.nn.Module")
    probe = torch.rand(2, *spec.shape, generator=torch.Generator().manual_seed(0))  # the init's RNG untouched
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except Exception as exc:
        raise BenchError(f"--arch {arch} cannot take a batch of {spec.name} images {tuple(probe.shape)} "
                         f"in [0, 1]: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchError(f"--arch {arch} maps a batch {tuple(probe.shape)} to {shape}, not (2, {spec.num_classes}) "
                         "logits")
    return model.train()
