"""The RunConfig of `bench run`, `bench audit` and `bench inspect`, from their parsed arguments."""

from __future__ import annotations

import argparse

from bench.cli.model_options import model_spec
from bench.config import RunConfig
from bench.data import DATASETS
from bench.errors import BenchError
from bench.model import Precision, Speed


def run_config(args: argparse.Namespace) -> RunConfig:
    """The model flags, dataset (from a checkpoint's sidecar when not given), threat model and run
    options; `--precision` and friends exist on `bench run` only."""
    dataset = args.dataset
    if args.checkpoint is not None:
        from defenses.checkpoints import read_sidecar

        trained_on = read_sidecar(args.checkpoint)["dataset"] if args.checkpoint.is_file() else None
        if dataset and trained_on and dataset != trained_on:
            raise BenchError(f"{args.checkpoint} was trained on {trained_on}, not {dataset}")
        dataset = dataset or trained_on
    dataset = dataset or "fashion-mnist"
    DATASETS.get(dataset)
    cfg = RunConfig(dataset=dataset, threat=RunConfig.resolve_threat(dataset, args.norm, args.eps),
                     attacks_text=args.attack, defense=args.defense, checkpoint=args.checkpoint,
                     model=model_spec(args), sha256=args.sha256, data_dir=args.data_dir, n=args.n,
                     sample_seed=args.sample_seed,
                     seed=args.seed, batch_size=args.batch_size, device=args.device,
                     speed=Speed(Precision(getattr(args, "precision", "fp32")), getattr(args, "channels_last", False),
                                 getattr(args, "compile", False)),
                     save_adv=getattr(args, "save_adv", False),
                     results_dir=args.results_dir, resume=args.resume,
                     allow_randomized=args.allow_randomized, draws=args.draws, quiet=args.quiet)
    cfg.attacks()  # a bad attack list is a usage error before anything is loaded
    return cfg
