"""`bench verify-adv`: re-verify a file of adversarial examples and record it as `external:NAME`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.cli.arguments import dataset_help, positive_int
from bench.cli.model_options import add_model_arguments
from bench.data import DEFAULT_DATASET
from bench.evaluation.config import RANDOMIZED_DRAWS

EXAMPLES = """examples:
  bench run --defense pgd-at --attack pgd --n 200 --save-adv     # writes <record>.adv.pt
  bench verify-adv --defense pgd-at --adv results/runs/<record>.adv.pt
  bench verify-adv --model pkg.mod:net --weights w.pt --adv theirs.adv.pt --name smith2026 --source https://…

The file (format bench-adv, docs/honest-numbers.md): test-split indices, the threat model and one
adversarial input per index. Every example must lie in the ε-ball of its own clean point and in
[0, 1], or the file is refused naming the first that does not; each success is re-verified in
fp32. The record's attack is external:NAME (default: the file name up to its first dot); it
counts in the worst case and on the leaderboard, on the file's points.
exit status: 0 verified and recorded, 2 bad input (including a file that fails the checks)
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify-adv", help="re-verify a file of adversarial examples; record it as external:NAME",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--adv", type=Path, required=True, help="the adversarial examples (bench-adv format)")
    p.add_argument("--name", help="the evaluation's name: the record's attack is external:NAME")
    p.add_argument("--source", help="where the file comes from (a URL or citation), kept in the record")
    p.add_argument("--dataset", default=None, help=dataset_help())
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--norm", "--threat", dest="norm", help="threat model the file must be for (default: the file's)")
    p.add_argument("--eps", help="ε the file must be for (default: the file's)")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=_cmd_verify_adv, attack="fgsm", n=None, sample_seed=None, seed=0, resume=False,
                   allow_randomized=False, draws=RANDOMIZED_DRAWS, quiet=True)


def _cmd_verify_adv(args: argparse.Namespace) -> int:
    from bench.cli.run import _rebuild_quietly
    from bench.cli.run_config import run_config
    from bench.evaluation.config import RunConfig
    from bench.evaluation.external import verify_adversarials
    from bench.files import ensure_writable_dir
    from bench.reporting.derived import derived_root
    from bench.reporting.run_summary import format_summary, json_summary

    asked = None
    if args.eps is not None or args.norm is not None:
        dataset = args.dataset or DEFAULT_DATASET
        asked = RunConfig.resolve_threat(dataset, args.norm, args.eps)
    eps_text, args.eps = args.eps, None  # the run's threat is the file's, checked against what was asked
    cfg = run_config(args)
    args.eps = eps_text
    ensure_writable_dir(cfg.results_dir, "--results-dir")
    ensure_writable_dir(derived_root(cfg.results_dir), "the folder of the derived files")
    result = verify_adversarials(cfg, args.adv, name=args.name, source=args.source, threat=asked)
    if args.json:
        print(json.dumps(json_summary(result.record, result.record_path), sort_keys=True))
    else:
        print(format_summary(result.record, result.record_path))
    _rebuild_quietly(cfg.results_dir)
    return 0
