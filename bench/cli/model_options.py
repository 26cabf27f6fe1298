"""The model-choosing flags shared by `bench run`, `bench audit` and `bench inspect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import label_value
from bench.loading.sources import InputRange, ModelSpec, parse_floats

MODEL_HELP = ("a user model: robustbench:NAME (zoo weights already under --model-dir), "
              "package.module:factory (with --weights FILE), or a torch.export (.pt2), TorchScript or "
              "pickled-module file (these three with --trust-checkpoint: loading them runs code)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--defense", help="registered defense: its committed checkpoint for --dataset")
    model.add_argument("--checkpoint", type=Path, help="a checkpoint written by `bench train` (with sidecar)")
    model.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--label", type=label_value, help="the model's name in records, result files and the board "
                   "(default: the defense, the checkpoint's file stem, or the user model's factory or file)")
    add_model_qualifiers(p)


def add_model_qualifiers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sha256", help="expected sha256 of the checkpoint / weights / model file (refused if it differs)")
    p.add_argument("--weights", type=Path, help="state_dict file for --model package.module:factory")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load a --model file that runs code when loaded (torch.export, TorchScript, pickled "
                        "modules, weights that need the full unpickler): only for files you trust")
    p.add_argument("--mean", help="per-channel mean the model subtracts, e.g. 0.4914,0.4822,0.4465 "
                                  "(applied inside the model; default: from the sidecar, else none)")
    p.add_argument("--std", help="per-channel std the model divides by (with --mean)")
    p.add_argument("--input-range", choices=[r.value for r in InputRange],
                   help="pixel range the model was trained on (default: sidecar, else 0-1)")
    p.add_argument("--model-dir", type=Path, help="RobustBench model directory (default: $ROBUSTBENCH_MODEL_DIR "
                                                  "or ./models, robustbench's own default)")


def model_spec(args: argparse.Namespace, model: str | None = None) -> ModelSpec | None:
    """The --model spec (or `model`, a spec named another way, as `bench inspect MODEL` does), or
    None; qualifiers without a user model are an error, not silently ignored."""
    model = model if model is not None else args.model
    qualifiers = {"--weights": args.weights, "--trust-checkpoint": args.trust_checkpoint or None,
                  "--mean": args.mean, "--std": args.std, "--input-range": args.input_range,
                  "--model-dir": args.model_dir}
    if model is None:
        given = [flag for flag, value in qualifiers.items() if value is not None]
        if given:
            from bench.errors import BenchError

            raise BenchError(f"{', '.join(given)} only apply to --model")
        return None
    extra = {"model_dir": args.model_dir} if args.model_dir is not None else {}
    return ModelSpec(model, weights=args.weights, trust=args.trust_checkpoint,
                     mean=parse_floats(args.mean, "--mean"), std=parse_floats(args.std, "--std"),
                     input_range=InputRange(args.input_range) if args.input_range else None, **extra)
