"""The RunConfig of `bench run`, `bench audit` and `bench inspect`, from their parsed arguments."""

from __future__ import annotations

import argparse

from bench.attacks import parse_attacks
from bench.cli.model_options import model_spec
from bench.evaluation.config import RunConfig
from bench.loading.model import Precision, Speed


def run_config(args: argparse.Namespace) -> RunConfig:
    """The model flags, dataset (from a checkpoint's sidecar when not given), threat model and run
    options; `--channels-last` and `--compile` exist on `bench run` only
    (`--precision` on `bench run` and `bench sweep`)."""
    dataset = RunConfig.resolve_dataset(args.dataset, args.checkpoint)
    cfg = RunConfig(dataset=dataset, threat=RunConfig.resolve_threat(dataset, args.norm, args.eps),
                     attack_specs=parse_attacks(args.attack), defense=args.defense, checkpoint=args.checkpoint,
                     model=model_spec(args), label=args.label, sha256=args.sha256, data_dir=args.data_dir, n=args.n,
                     sample_seed=args.sample_seed,
                     seed=args.seed, batch_size=args.batch_size, device=args.device,
                     speed=Speed(Precision(getattr(args, "precision", "fp32")), getattr(args, "channels_last", False),
                                 getattr(args, "compile", False)),
                     save_adv=getattr(args, "save_adv", False),
                     results_dir=args.results_dir, resume=args.resume,
                     allow_randomized=args.allow_randomized, draws=args.draws, quiet=args.quiet)
    cfg.attacks()  # a bad attack list is a usage error before anything is loaded
    return cfg
