"""``python -m peftbench.analysis report RESULTS_DIR --out REPORT_DIR [--experiment NAME] [--reference]
[--reference-method lora] [--alpha 0.05]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peftbench.analysis.report import report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m peftbench.analysis", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("report", help="tables (md/tex/csv), figures (png/pdf) and an index README")
    make.add_argument("results_dir", type=Path, help="folder holding <experiment>/<run-id>/run.json")
    make.add_argument("--out", type=Path, required=True, help="report folder (created; files overwritten)")
    make.add_argument("--experiment", default=None, help="only runs of this experiment (default: all)")
    make.add_argument("--reference", action="store_true",
                      help="also compare with AdaLoRA Tables 1-3 (GLUE, SQuAD, XSum/CNN-DM)")
    make.add_argument("--metrics", choices=("best", "final"), default="best",
                      help="best dev checkpoint (default, as the papers report) or end of training")
    make.add_argument("--params", choices=("effective", "trainable", "adapter"), default="effective",
                      help="which parameters[...] count the #Params column shows")
    make.add_argument("--reference-method", default="lora",
                      help="method every other is tested against (paired over shared seeds) and whose cost is 1×")
    make.add_argument("--alpha", type=float, default=0.05,
                      help="significance level of the paired t-test mark (default 0.05)")
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must lie between 0 and 1, got {args.alpha}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.results_dir.is_dir():
        print(f"peftbench: error: no results folder at {args.results_dir}", file=sys.stderr)
        return 2
    written = report(args.results_dir, args.out, experiment=args.experiment, reference=args.reference,
                     metric_kind=args.metrics, params_kind=args.params,
                     reference_method=args.reference_method, alpha=args.alpha)
    print(f"wrote {len(written)} files; index: {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
