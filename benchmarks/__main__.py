"""python -m benchmarks run [--tasks ...] [--quick] | inference [...] | scaling [...]"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="each task: our engine, then transformers.Trainer, one table")
    run.add_argument("--tasks", nargs="+", default=None, help="default: every task with a pair")
    run.add_argument("--quick", action="store_true", help="a few minutes per pair on the real data")
    inference = commands.add_parser("inference", help="pipeline latency/throughput of saved models")
    inference.add_argument("--models", nargs="+", required=True, help="<task>=<saved model dir> ...")
    inference.add_argument("--samples", type=int, default=64)
    scaling = commands.add_parser("scaling", help="throughput with 1/2 processes and 0/1/2 loader workers")
    scaling.add_argument("--task", default="text_classification")
    args = parser.parse_args(argv)
    import tasks  # noqa: F401  (registers every task)

    if args.command == "run":
        from benchmarks.suite import pairs, run_suite
        print(f"written to {run_suite(args.tasks or list(pairs()), args.quick)}")
    elif args.command == "inference":
        from benchmarks.inference import run_inference
        print(f"written to {run_inference(dict(m.split('=', 1) for m in args.models), args.samples)}")
    else:
        from benchmarks.scaling import run_scaling
        print(f"written to {run_scaling(args.task)}")


if __name__ == "__main__":
    main(sys.argv[1:])
