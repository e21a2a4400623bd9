"""python -m benchmarks run [--tasks ...] [--quick] [--seeds ...] [--only ours|trainer] [...] | inference | scaling"""
from __future__ import annotations

import argparse
import shlex
import sys


def _flags(text: str) -> list[str]:
    return shlex.split(text)


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--tasks", nargs="+", default=None, help="default: every task with a pair")
    run.add_argument("--quick", action="store_true", help="a few minutes per pair on the real data")
    run.add_argument("--seeds", type=int, nargs="+", default=None,
                     help="train both sides once per seed (--seed N), alternating, and add a mean row per side; "
                          "default: the recipe's seed, once")
    run.add_argument("--only", choices=["ours", "trainer"], default=None, help="run one side only")
    run.add_argument("--epochs", type=int, default=None, help="--num_train_epochs for both sides")
    run.add_argument("--extra_flags", type=_flags, default=[], metavar='"FLAGS"',
                     help='further training flags for both sides, one quoted string (a single flag: '
                          '--extra_flags=--flag), e.g. "--architecture rt_detr --learning_rate 1e-4"')
    run.add_argument("--ours_flags", type=_flags, default=[], metavar='"FLAGS"',
                     help='flags for our side only, e.g. --ours_flags=--no_group_by_length')
    run.add_argument("--trainer_flags", type=_flags, default=[], metavar='"FLAGS"',
                     help='flags for the Trainer baseline only, e.g. "--pipeline suite", '
                          '"--trainer_learning_rate 1e-4", "--max_steps 450 --mixed_precision no" (fp32 Trainer)')
    run.add_argument("--eval_at_end", action="store_true",
                     help="full mode, but both sides evaluate once at the end (as --quick does)")
    run.add_argument("--omp_passive", action="store_true",
                     help="OMP_WAIT_POLICY=PASSIVE for both sides: idle OpenMP threads sleep instead of spinning, "
                          "which keeps a busy shared machine from slowing small ops 10-100x")
    run.add_argument("--tag", default="",
                     help="result file suffix (suite[-quick]-TAG), so a variant keeps its own rows")
    run.add_argument("--recipe", default=None,
                     help="another recipe of the one task in --tasks, for both sides (e.g. tasks/translation/recipes/multi30k_long.yaml)")
    run.add_argument("--dry_run", action="store_true", help="print the commands it would launch; run none")


def run_options(args: argparse.Namespace):
    from benchmarks.suite import Options

    return Options(quick=args.quick, seeds=args.seeds, only=args.only, epochs=args.epochs,
                   extra_flags=args.extra_flags, ours_flags=args.ours_flags, trainer_flags=args.trainer_flags,
                   eval_at_end=args.eval_at_end, omp_passive=args.omp_passive, tag=args.tag,
                   recipe=args.recipe)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="each task: our engine, then transformers.Trainer, one table")
    add_run_options(run)
    inference = commands.add_parser("inference", help="pipeline latency/throughput of saved models")
    inference.add_argument("--models", nargs="+", required=True, help="<task>=<saved model dir> ...")
    inference.add_argument("--samples", type=int, default=64)
    scaling = commands.add_parser("scaling", help="throughput with 1/2 processes and 0/1/2 loader workers")
    scaling.add_argument("--task", default="text_classification")
    args = parser.parse_args(argv)
    if args.command == "run" and args.dry_run:
        from benchmarks.suite import dry_run, pairs
        dry_run(args.tasks or list(pairs()), run_options(args))
        return
    import tasks  # noqa: F401  (registers every task)

    if args.command == "run":
        from benchmarks.suite import pairs, run_suite
        print(f"written to {run_suite(args.tasks or list(pairs()), run_options(args))}")
    elif args.command == "inference":
        from benchmarks.inference import run_inference
        print(f"written to {run_inference(dict(m.split('=', 1) for m in args.models), args.samples)}")
    else:
        from benchmarks.scaling import run_scaling
        print(f"written to {run_scaling(args.task)}")


if __name__ == "__main__":
    main(sys.argv[1:])
