"""`bench` command line: run (evaluate), train, ls, data. Strings are parsed here and nowhere else."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError

RUN_EXAMPLES = """examples:
  bench run --defense pgd-at --attack aa                    # committed checkpoint, AutoAttack
  bench run --defense ancra --attack aa                     # any registered defense (`bench ls defenses`)
  bench run --defense pgd-at --attack fgsm,pgd,cw,aa --n 1000
  bench run --checkpoint checkpoints/fashion-mnist/standard-smallcnn.pt --attack pgd:steps=50,restarts=2
  bench run --defense pgd-at --attack pgd --eps 0.2 --json   # one JSON summary on stdout
  bench run --defense pgd-at --attack aa --resume            # continue an interrupted run
"""

TRAIN_EXAMPLES = """examples:
  bench train --list
  bench train --defense pgd-at --dataset fashion-mnist       # writes checkpoints/fashion-mnist/pgd-at-smallcnn.pt
  bench train --defense pgd-at --epochs 2 --out /tmp/try.pt  # override any recipe field
  bench train --defense pgd-at --resume                      # continue after an interruption
  bench train --defense ancra-mart --param beta=6,zeta=2     # the method's own hyper-parameters
  bench train --defense afd --init runs/my-natural.pt        # fine-tune another natural checkpoint
  torchrun --nproc-per-node 2 -m bench train --defense trades --out /tmp/trades.pt   # data-parallel
"""


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a checkpoint with a set of attacks",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--defense", help="registered defense: its committed checkpoint for --dataset")
    model.add_argument("--checkpoint", type=Path, help="a checkpoint written by `bench train` (with sidecar)")
    p.add_argument("--sha256", help="expected sha256 of the checkpoint file")
    p.add_argument("--dataset", default=None, help="fashion-mnist (default), mnist, cifar10, cifar100, svhn")
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--attack", default="fgsm,pgd,cw,aa",
                   help="comma-separated attacks with optional parameters, e.g. pgd:steps=50,restarts=2 "
                        "(default: fgsm,pgd,cw,aa; `bench ls attacks` lists them)")
    p.add_argument("--norm", help="linf or l2 (default: the dataset's default threat model)")
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps", help="perturbation budget, e.g. 0.1 or 8/255")
    eps.add_argument("--eps-sweep", metavar="EPS,EPS,...",
                     help="one run per ε (records marked eps-sweep: they feed the ε-curve plots and "
                          "checks, not the leaderboard tables), e.g. 0.05,0.1,0.2,0.3,0.5")
    p.add_argument("--n", type=int, help="number of test points (default: all)")
    p.add_argument("--sample-seed", type=int, help="draw the --n points at random with this seed "
                   "instead of taking the first n")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' randomness (default 0)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    p.add_argument("--allow-randomized", action="store_true",
                   help="evaluate a randomized model anyway (recorded as a warning)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from bench.config import RunConfig
    from bench.harness import evaluate
    from bench.report import format_summary
    from bench.schema import RunPurpose
    from bench.threat import parse_eps_list

    cfg = RunConfig.from_cli(args)
    configs = [cfg]
    if args.eps_sweep:
        configs = [dataclasses.replace(cfg, threat=RunConfig.resolve_threat(cfg.dataset, args.norm, str(e)),
                                       purpose=RunPurpose.EPS_SWEEP) for e in parse_eps_list(args.eps_sweep)]
    for one in configs:
        result = evaluate(one)
        if args.json:
            print(json.dumps(result.summary(), sort_keys=True))
        else:
            print(format_summary(result) + ("\n" if len(configs) > 1 else ""))
    _rebuild_quietly(cfg.results_dir)
    return 0


def _rebuild_quietly(runs_dir: Path) -> None:
    """Refresh results.csv after a run; a problem there must not hide the run's own result."""
    from bench.derived import rebuild

    try:
        rebuild(runs_dir, with_leaderboard=False)
    except BenchError as exc:
        print(f"warning: results.csv not rebuilt: {exc}", file=sys.stderr)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a registered defense with its recipe",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list defenses and their recipes")
    p.add_argument("--defense")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--out", type=Path, help="checkpoint path (default checkpoints/<dataset>/<defense>-<arch>.pt)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--max-train-points", type=int, help="train on fewer points (smoke tests)")
    recipe = p.add_argument_group("recipe overrides (any field; `bench train --list` shows the recipes)")
    for flag, kind in RECIPE_FLAGS:
        recipe.add_argument(f"--{flag}", type=kind)
    recipe.add_argument("--param", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="the method's own hyper-parameters, e.g. --param beta=5 (repeatable)")
    p.set_defaults(func=_cmd_train)


RECIPE_FLAGS: tuple[tuple[str, type], ...] = (
    ("arch", str), ("epochs", int), ("batch-size", int), ("lr", float), ("momentum", float),
    ("weight-decay", float), ("eps", float), ("attack-steps", int), ("train-points", int), ("init", str),
    ("seed", int))


def _parse_params(items: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for item in items:
        for pair in filter(None, (t.strip() for t in item.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key or not value:
                raise BenchError(f"bad --param {pair!r}: write KEY=VALUE")
            params[key.strip()] = value.strip()
    return params or None


def _print_defenses() -> None:
    import dataclasses

    from defenses import DEFENSES

    for name, defense in DEFENSES.items():
        print(f"{name}  [{defense.paper}]\n    {defense.summary}\n    variant: {defense.variant}")
        if defense.params is not None:
            knobs = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(defense.params))
            print(f"    params: {knobs}")
        for dataset, recipe in defense.recipes.items():
            attack = (f", ε={recipe.eps:.4g} PGD-{recipe.attack_steps}" if recipe.eps else "")
            extra = f", init={recipe.init}" if recipe.init else ""
            points = f" on {recipe.train_points} points" if recipe.train_points else ""
            own = f", params {recipe.params}" if recipe.params else ""
            print(f"    {dataset}: {recipe.arch}, {recipe.epochs} epochs{points}, batch {recipe.batch_size}, "
                  f"lr {recipe.lr:g} ({recipe.schedule.value} {list(recipe.milestones) or ''}), "
                  f"wd {recipe.weight_decay:g}{attack}{extra}{own}")


def _cmd_train(args: argparse.Namespace) -> int:
    from defenses import trainer

    if args.list:
        _print_defenses()
        return 0
    if not args.defense:
        raise BenchError("bench train needs --defense NAME (or --list)")
    overrides = {flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, _ in RECIPE_FLAGS}
    overrides["params"] = _parse_params(args.param)
    job = trainer.resolve_job(args.defense, args.dataset, overrides, args.out, data_dir=args.data_dir,
                              resume=args.resume, quiet=args.quiet, max_train_points=args.max_train_points)
    sidecar = trainer.train(job)
    if not sidecar:  # a torchrun rank other than 0: rank 0 wrote and reports
        return 0
    best = sidecar["held_out"]
    print(f"wrote {job.out} (sha256 {sidecar['sha256'][:16]}…) in {sidecar['train_seconds']:.0f} s; "
          f"selected epoch {best['epoch']} on held-out data: "
          + ", ".join(f"{k} {v:.3f}" for k, v in best.items() if k != "epoch"))
    return 0


def _add_ls(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list attacks, defenses or datasets")
    p.add_argument("what", choices=["attacks", "defenses", "datasets"])
    p.set_defaults(func=_cmd_ls)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "attacks":
        from bench.attacks import ATTACKS

        for name, entry in ATTACKS.items():
            print(f"{name:10s} {entry.summary}")
    elif args.what == "defenses":
        from defenses import DEFENSES

        for name, defense in DEFENSES.items():
            print(f"{name:10s} {defense.summary} (datasets: {', '.join(defense.recipes)})")
    else:
        from bench.data import DATASETS

        for name, spec in DATASETS.items():
            threats = "; ".join(t.label for t in spec.threat_models)
            print(f"{name:14s} {spec.num_classes} classes, {spec.shape}, default threat: {threats}")
    return 0


RESULTS_EXAMPLES = """examples:
  bench results                                   # every (run, attack) row, markdown
  bench results --defense ancra --attack aa       # filter
  bench results --dataset fashion-mnist --format csv > table.csv
  bench leaderboard                               # rewrite results/LEADERBOARD.md, plots, results.csv
"""


def _add_results(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="print the result table derived from the run records",
                       epilog=RESULTS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="the run records")
    p.add_argument("--dataset")
    p.add_argument("--defense")
    p.add_argument("--attack", help="an attack label as recorded (e.g. pgd, aa, pgd:steps=50) or worst_case")
    p.add_argument("--label", help="a checkpoint label (defense name or checkpoint file stem)")
    p.add_argument("--purpose", choices=["evaluation", "eps-sweep"], help="evaluation runs feed the tables, "
                   "eps-sweep runs the ε curves")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--all-columns", action="store_true", help="markdown: every column, not the summary ones")
    p.set_defaults(func=_cmd_results)


SUMMARY_COLUMNS = ["date", "dataset", "norm", "eps", "label", "arch", "checkpoint_sha256", "attack",
                   "protocol", "n", "clean_accuracy", "robust_accuracy", "ci95_low", "ci95_high", "seconds"]


def _cmd_results(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.schema import load_records
    from bench.table import build_table, filter_table, to_csv

    table = filter_table(build_table(load_records(args.results_dir)), dataset=args.dataset, defense=args.defense,
                         attack=args.attack, label=args.label, purpose=args.purpose)
    if args.format == "csv":
        sys.stdout.write(to_csv(table))
    elif args.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        shown = table if args.all_columns else table[SUMMARY_COLUMNS].assign(
            checkpoint_sha256=table["checkpoint_sha256"].str[:12])
        print(tabulate(shown.values.tolist(), headers=list(shown.columns), tablefmt="github",
                       floatfmt=".4g", missingval=""))
    return 0


def _add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="regenerate results/LEADERBOARD.md, its plots and results.csv")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"),
                   help="the run records; derived files go to its parent folder")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.derived import rebuild

    derived = rebuild(args.results_dir)
    print(f"{derived.leaderboard} and {derived.table} from {derived.records} records; "
          f"{len(derived.plots)} plots in {args.results_dir.parent / 'plots'}")
    return 0


CHECK_EXAMPLES = """examples:
  bench check                                       # every committed checkpoint vs results/baselines/
  bench check --defense ancra --defense pgd-at      # a subset
  bench check --update-baseline --reason "PGD step size now ε/4 per the paper"   # re-bless, with history
  bench check --checkpoint ckpt/mine.pt --baselines ci/baselines                # your own CI
exit status: 0 pass, 1 a measure moved beyond the statistical rule (report says what), 2 bad input
"""


SWEEP_EXAMPLES = """examples:
  bench sweep                                          # fgsm,pgd,cw,aa over every committed fashion-mnist checkpoint
  bench sweep --attack pgd,aa --n 1000                 # what is already recorded is skipped
  bench sweep --checkpoints-dir runs/ --attack pgd     # every checkpoint (with sidecar) in a folder
  bench sweep --attack fgsm,pgd --eps-sweep 0.05,0.1,0.2,0.3,0.5 --n 500   # ε curves for the plots
  bench sweep --force                                  # rerun even what is recorded
An interrupted sweep continues where it stopped when started again with the same options.
"""


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an attack set over every checkpoint, skipping what is recorded",
                       epilog=SWEEP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--checkpoints-dir", type=Path, help="every *.pt with a sidecar here, instead of the "
                   "registered defenses' committed checkpoints")
    p.add_argument("--attack", default="fgsm,pgd,cw,aa")
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps", help="perturbation budget (default: the dataset's)")
    eps.add_argument("--eps-sweep", metavar="EPS,EPS,...", help="every checkpoint at each ε (records marked "
                     "eps-sweep, for the ε-curve plots and checks)")
    p.add_argument("--norm")
    p.add_argument("--n", type=int)
    p.add_argument("--sample-seed", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--force", action="store_true", help="rerun attacks that are already recorded")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bench import sweep
    from bench.config import RunConfig
    from bench.derived import rebuild
    from bench.report import format_summary
    from bench.schema import RunPurpose
    from bench.threat import parse_eps_list

    common = dict(dataset=args.dataset, attacks_text=args.attack, data_dir=args.data_dir, n=args.n,
                  sample_seed=args.sample_seed, seed=args.seed, batch_size=args.batch_size, device=args.device,
                  results_dir=args.results_dir, resume=None, quiet=args.quiet)
    models = ([{"checkpoint": p} for p in sweep.checkpoints_in(args.checkpoints_dir)] if args.checkpoints_dir
              else [{"defense": d} for d in sweep.registered_checkpoints(args.dataset)])
    if args.eps_sweep:
        threats = [(RunConfig.resolve_threat(args.dataset, args.norm, str(e)), RunPurpose.EPS_SWEEP)
                   for e in parse_eps_list(args.eps_sweep)]
    else:
        threats = [(RunConfig.resolve_threat(args.dataset, args.norm, args.eps), RunPurpose.EVALUATION)]
    targets = [RunConfig(threat=threat, purpose=purpose, **model, **common)
               for model in models for threat, purpose in threats]

    def report(item: sweep.SweepItem, result: object) -> None:
        skipped = f" (already recorded: {', '.join(item.skipped)})" if item.skipped else ""
        if result is None:
            print(f"{item.label}: nothing to do{skipped}")
        else:
            print(f"{item.label}{skipped}:\n{format_summary(result)}\n")  # type: ignore[arg-type]

    sweep.run(sweep.plan(targets, args.force), report)
    derived = rebuild(args.results_dir)
    print(f"rebuilt {derived.table} and {derived.leaderboard} from {derived.records} records")
    return 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    from bench.gate import ALPHA, NOISE_RATE, GateProtocol

    default = GateProtocol()
    p = sub.add_parser("check", help="CI regression gate: re-evaluate checkpoints and compare per-example "
                       "flags with committed baselines",
                       description=f"Red when a measure (clean or an attack) has more flipped points than "
                       f"numerical noise explains (rate {NOISE_RATE:.1%}, α={ALPHA}), when flips lean one way "
                       "(exact sign test, also pooled over checkpoints), or when a checkpoint's sha256 changed.",
                       epilog=CHECK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--defense", action="append", default=[], help="a registered defense (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], type=Path,
                   help="a checkpoint file with sidecar; its label is the file stem (repeatable)")
    p.add_argument("--baselines", type=Path, default=Path("results/baselines"))
    p.add_argument("--n", type=int, default=default.n, help=f"test points (default {default.n})")
    p.add_argument("--attack", default=default.attacks, help=f"attacks (default {default.attacks})")
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--update-baseline", action="store_true", help="re-bless: write new baselines")
    p.add_argument("--reason", default="", help="why the baseline changes (required with --update-baseline)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from bench import gate

    protocol = gate.GateProtocol(n=args.n, attacks=args.attack, seed=args.seed)
    problems: list[str] = []
    if args.defense or args.checkpoint:
        targets = [gate.Target(d, args.dataset, defense=d) for d in args.defense]
        targets += [gate.Target(c.stem, args.dataset, checkpoint=c) for c in args.checkpoint]
    else:
        targets, problems = gate.default_targets(args.dataset, args.baselines)
    if args.update_baseline:
        for path in gate.update(targets, args.baselines, protocol, args.reason, quiet=args.quiet):
            print(f"wrote {path}")
        return 0
    result = gate.check(targets, args.baselines, protocol, problems, quiet=args.quiet)
    print(gate.format_report(result, protocol, args.dataset))
    return 1 if result.failed else 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download a dataset with torchvision (needs network)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("dataset")
    p.add_argument("--data-dir", type=Path, default=None)
    p.set_defaults(func=_cmd_data)


def _cmd_data(args: argparse.Namespace) -> int:
    from bench import data

    target = args.data_dir or data.DEFAULT_DATA_DIR
    data.fetch(args.dataset, target)
    print(f"{args.dataset} is in {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Train robust classifiers and evaluate "
                                     "them with FGSM, PGD, C&W and the official AutoAttack.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    adders: list[Callable[[argparse._SubParsersAction], None]] = [
        _add_run, _add_train, _add_results, _add_leaderboard, _add_sweep, _add_check, _add_ls, _add_data]
    for add in adders:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench results | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
