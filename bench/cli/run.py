"""`bench run`: evaluate one checkpoint with a set of attacks (or one run per ε)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import distributed
from bench.attacks.specs import format_attacks
from bench.cli.arguments import (
    add_randomized_arguments,
    dataset_help,
    positive_float,
    positive_int,
    seed_value,
)
from bench.cli.model_options import add_model_arguments
from bench.errors import BenchError
from bench.evaluation.config import STANDARD_ATTACKS
from bench.loading.model import Precision
from bench.verifier.runner import TIME_LIMIT as CERTIFY_TIME_LIMIT
from bench.verifier.runner import Method

RUN_EXAMPLES = """examples:
  bench run --defense pgd-at --attack aa                    # committed checkpoint, AutoAttack
  bench run --defense ancra --attack aa                     # any registered defense (`bench ls defenses`)
  bench run --defense pgd-at --attack fgsm,pgd,cw,aa --n 1000
  bench run --checkpoint checkpoints/fashion-mnist/standard-smallcnn.pt --attack pgd:steps=50,restarts=2
  bench run --defense pgd-at --attack pgd --eps 0.2 --json   # one JSON summary on stdout
  bench run --defense pgd-at --attack aa --resume            # continue an interrupted run
  bench run --defense pgd-at --attack fgsm,pgd,cw,aa-fast --cascade   # worst case only, far fewer passes
  bench run --defense ancra --attack adaptive                # the defense's own adaptive attacks + transfer + long Square
  bench run --model robustbench:Wong2020Fast --dataset cifar10 --data-dir DATA --model-dir models --attack aa
  bench run --model mypkg.nets:make_net --weights net.pt --mean 0.286 --std 0.353 --attack pgd
  bench run --model exported.pt2 --trust-checkpoint --attack fgsm,pgd   # torch.export file (runs its code)
  bench run --model scripted.pt --trust-checkpoint --attack pgd   # TorchScript runs code: trusted files only
  torchrun --nproc-per-node 4 -m bench run --defense pgd-at --attack aa --points 1000   # 4 ranks
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m bench run --defense pgd-at --attack aa
"""

CERTIFY_EXAMPLES = """examples:
  bench certify --defense ibp --n 1000                      # ibp and crown bounds, checked by pgd on the same points
  bench certify --defense ibp --method crown --attack fgsm,pgd,cw,aa-fast --n 1000
  bench certify --checkpoint checkpoints/fashion-mnist/pgd-at-mlp-2x64.pt --method milp --n 200 --time-limit 60
"""
CERTIFY_ATTACKS = "pgd"  # a certificate is always checked by at least one strong attack on the same points


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a checkpoint with a set of attacks",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_evaluation_arguments(p, format_attacks(STANDARD_ATTACKS), "default: the standard set, ")
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps", help="perturbation budget, e.g. 0.1 or 8/255")
    eps.add_argument("--eps-sweep", metavar="EPS,EPS,...",
                     help="one run per ε (records marked eps-sweep: they feed the ε-curve plots and "
                          "checks, not the leaderboard tables), e.g. 0.05,0.1,0.2,0.3,0.5")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--individual", action="store_true",
                      help="every attack on every clean-correct point: per-attack columns (the default)")
    mode.add_argument("--cascade", action="store_true",
                      help="only the worst case: each attack runs on what the earlier ones left robust "
                           "(same flags as --individual, fewer passes; recorded as purpose worst-case, "
                           "whose per-attack columns are cumulative, so it feeds no per-attack table)")
    p.add_argument("--precision", choices=[p.value for p in Precision], default="fp32",
                   help="attack arithmetic: fp32 (default: IEEE fp32, TF32 off), tf32 (CUDA tensor cores for "
                        "fp32 convolutions and matmuls), bf16 or fp16 (CUDA) under autocast; losses in fp32 and "
                        "every success re-verified in IEEE fp32 (one that does not hold counts as robust, "
                        "with a warning). bf16 attacks miss points fp32 breaks (docs/performance.md): its "
                        "numbers may be too high")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (pays on GPUs "
                   "with tensor cores; measure with benchmarks/gpu_perf.py)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model for the attacks "
                   "(verification stays eager fp32)")
    p.add_argument("--save-adv", action="store_true", help="also save the worst case's adversarial examples "
                   "(a .pt next to the record); otherwise they are not kept")
    p.add_argument("--certify", metavar="METHODS", help="also certify each point after the attacks: ibp, crown "
                   "(lower bounds) or milp (exact, small ReLU networks), comma-separated; L∞ only; the record keeps "
                   "certified flags beside the attacks' (`bench certify`; docs/certify.md)")
    p.add_argument("--certify-time-limit", type=positive_float, default=CERTIFY_TIME_LIMIT, metavar="SECONDS",
                   help=f"milp's limit per point; an unfinished point is undecided (default {CERTIFY_TIME_LIMIT:.0f})")
    p.set_defaults(func=_cmd_run)


def add_certify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="prove points robust (ibp, crown) or decide them exactly (milp), "
                       "checked by attacks on the same points",
                       description="Certified flags per test point at the threat model's ε (L∞), in a run record "
                                   "beside the flags of the attacks that check them: `bench run --certify METHODS` "
                                   "with attacks of your choice (default pgd). A point certified and broken stops "
                                   "the run before anything is written (docs/certify.md).",
                       epilog=CERTIFY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_evaluation_arguments(p, CERTIFY_ATTACKS, "the check on every certificate; default ")
    p.add_argument("--eps", help="perturbation budget, e.g. 0.1 (default: the dataset's)")
    p.add_argument("--method", default="ibp,crown", metavar="METHODS",
                   help="ibp (interval bounds), crown (linear bounds) or milp (exact, small ReLU networks), "
                        "comma-separated (default ibp,crown)")
    p.add_argument("--time-limit", dest="certify_time_limit", type=positive_float, default=CERTIFY_TIME_LIMIT,
                   metavar="SECONDS",
                   help=f"milp's limit per point; an unfinished point is undecided (default {CERTIFY_TIME_LIMIT:.0f})")
    p.set_defaults(func=_cmd_certify)


def _add_evaluation_arguments(p: argparse.ArgumentParser, attack_default: str, attack_role: str) -> None:
    """What `bench run` and `bench certify` share: the model, the data, the attacks and where records go."""
    add_model_arguments(p)
    p.add_argument("--dataset", default=None, help=dataset_help())
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--attack", default=attack_default,
                   help="comma-separated attacks with optional parameters, e.g. pgd:steps=50,restarts=2 "
                        f"({attack_role}{attack_default}; `bench ls attacks` lists them)")
    p.add_argument("--norm", "--threat", dest="norm", help="threat model: linf (Linf) or l2 (L2); default: the "
                   "dataset's default. Also picks the RobustBench zoo (robustbench:NAME)")
    p.add_argument("--n", "--points", dest="n", type=positive_int, help="number of test points (default: all); under "
                   "torchrun write --points (torchrun takes --n for an abbreviation of its own options)")
    p.add_argument("--sample-seed", type=seed_value, help="draw the --n points at random with this seed "
                   "instead of taking the first n")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the attacks' randomness (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"),
                   help="where the run record goes (default results/runs); results.csv is rebuilt beside a "
                        "folder named runs (results/), inside any other")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    add_randomized_arguments(p, "evaluate it anyway (recorded as a warning); attack it with eot-pgd or aa-rand")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_certify(args: argparse.Namespace) -> int:
    """`bench certify` is `bench run --certify METHODS` with its own defaults."""
    args.certify = args.method
    args.eps_sweep, args.cascade, args.save_adv = None, False, False
    return _cmd_run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    """Checks what the flags name (before any file is written or model loaded), then bench.evaluate
    or bench.eps_sweep on the model the flags resolve to."""
    from bench import api
    from bench.cli.run_config import run_config
    from bench.evaluation.resolve import resolve_model
    from bench.files import ensure_writable_dir
    from bench.reporting.derived import derived_root
    from bench.reporting.run_summary import format_summary, json_summary
    from bench.shards import join
    from bench.threat import parse_eps_list

    cfg = run_config(args)
    if args.cascade and args.eps_sweep is not None:
        raise BenchError("--cascade answers the worst case only; an ε sweep needs per-attack flags")
    eps_list = parse_eps_list(args.eps_sweep) if args.eps_sweep is not None else None
    if join().writes:  # before any model, data or attack work: where the record and the derived files go
        ensure_writable_dir(derived_root(cfg.results_dir), "the folder of the derived files")
        ensure_writable_dir(cfg.results_dir, "--results-dir")
    options = {"dataset": cfg.dataset, "attacks": args.attack, "n": cfg.n, "norm": args.norm,
               "sample_seed": cfg.sample_seed, "seed": cfg.seed, "device": cfg.device, "batch_size": cfg.batch_size,
               "save": True, "results_dir": cfg.results_dir, "data_dir": cfg.data_dir,
               "allow_randomized": cfg.allow_randomized, "draws": cfg.draws, "precision": cfg.speed.precision.value,
               "channels_last": cfg.speed.channels_last, "compile": cfg.speed.compile, "quiet": cfg.quiet}
    if args.certify is not None:
        if eps_list is not None:
            raise BenchError("--certify certifies at one ε: drop --eps-sweep, or run once per ε")
        options.update(certify=[m.value for m in Method.parse_list(args.certify)],
                       certify_time_limit=args.certify_time_limit)
    model = resolve_model(cfg)
    if eps_list is not None:
        results = api.eps_sweep(model, eps_list, **options)
    else:
        results = [api.evaluate(model, eps=args.eps, cascade=args.cascade, save_adversarials=cfg.save_adv,
                                resume=args.resume, **options)]
    for result in results:
        if result.record_path is None:  # a torchrun rank other than 0: rank 0 reports
            continue
        if args.json:
            print(json.dumps(json_summary(result.record, result.record_path), sort_keys=True))
        else:
            print(format_summary(result.record, result.record_path) + ("\n" if len(results) > 1 else ""))
        if cfg.save_adv and not args.json:
            print(f"adversarial examples: {result.record_path.with_suffix('.adv.pt')}")
    if join().writes:
        _rebuild_quietly(cfg.results_dir)
    distributed.teardown()
    return 0


def _rebuild_quietly(runs_dir: Path) -> None:
    """Refresh results.csv after a run; a problem there must not hide the run's own result."""
    from bench.reporting.derived import rebuild

    try:
        rebuild(runs_dir, with_leaderboard=False)
    except BenchError as exc:
        print(f"warning: results.csv not rebuilt: {exc}", file=sys.stderr)
