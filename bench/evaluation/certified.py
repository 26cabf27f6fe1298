"""The verifier's side of a run: certificates on the run's points, beside the attacks' flags.

A point certified robust that an attack of the same run broke is a contradiction (a bug in the attack's
verification or in the verifier): the run stops with the point, the attack and the method named, and
nothing is written.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from bench.errors import BenchError
from bench.evaluation.resolve import ResolvedModel
from bench.loading.model import Normalize
from bench.records.rules import certified_but_broken
from bench.records.run_record import CertifiedResult, RunRecord, finite_or_none
from bench.stats import Proportion
from bench.verifier.exact import dense_layers
from bench.verifier.network import Chain, check_equivalent
from bench.verifier.runner import Method, certify_points

MARGIN_DECIMALS = 6  # proven margins: close calls (near the 1e-4 allowance) stay readable


def pixel_model(resolved: ResolvedModel) -> nn.Module:
    """The model on [0, 1] pixels, on the CPU, with its declared normalization as the chain's first layer."""
    module = copy.deepcopy(resolved.module).cpu().eval()
    normalization = resolved.preprocessing.pixel_normalization()
    return module if normalization is None else nn.Sequential(Normalize(*normalization), module)


def check_certifiable(methods: tuple[Method, ...], resolved: ResolvedModel, x: torch.Tensor) -> None:
    """Refuse, before any attack runs, a model the verifier cannot bound (one line naming the layer)."""
    model = pixel_model(resolved)
    chain = Chain.of(model, tuple(x.shape[1:]))
    check_equivalent(model, chain, x[:64].cpu())
    if any(m.exact for m in methods):
        dense_layers(chain)


def certify_run(methods: tuple[Method, ...], resolved: ResolvedModel, x: torch.Tensor, y: torch.Tensor,
                eps: float, time_limit: float) -> dict[str, CertifiedResult]:
    model = pixel_model(resolved)
    results = {}
    for method in methods:
        cert = certify_points(model, x.cpu(), y.cpu(), eps, method, time_limit=time_limit)
        results[method.value] = CertifiedResult(
            method.value, method.exact, Proportion(int(cert.certified.sum()), len(y)), cert.certified, cert.refuted,
            finite_or_none(cert.margins, MARGIN_DECIMALS), round(cert.seconds, 3), cert.config)
    return results


def refuse_contradictions(record: RunRecord) -> None:
    """Stop before writing a record in which an attack broke a certified point."""
    as_json = record.to_json()
    for method in record.certified:
        broken = certified_but_broken(as_json, method)
        if broken:
            raise BenchError(broken)
