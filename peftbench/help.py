"""``python -m peftbench --help``: usage, subcommands, config groups and their options, Hydra flags, examples.

Only the standard library is imported here: help prints in a fraction of a second, without torch, transformers
or Hydra. The options are the file stems found under ``conf/<group>/`` and ``sweeps/`` when help is asked for,
so a new YAML file shows up without editing this module.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "conf"

# (how it is selected on the command line, folder, what it is)
GROUPS = (
    ("method=", CONFIG_DIR / "method", "PEFT method"),
    ("model=", CONFIG_DIR / "model", "backbone (tiny_* are random-init test models)"),
    ("task=", CONFIG_DIR / "task", "dataset and its metric"),
    ("budget=", CONFIG_DIR / "budget", "parameter budget as an average rank per adapted matrix"),
    ("trainer=", CONFIG_DIR / "trainer", "optimizer, schedule, batch size, epochs"),
    ("logger=", CONFIG_DIR / "logger", "metrics logging"),
    ("paths=", CONFIG_DIR / "paths", "results/, reports/, logs/ folders"),
    ("paper=", CONFIG_DIR / "paper", "per-task hyperparameters of a paper"),
    ("recipe=", CONFIG_DIR / "recipe", "train one run, or SoRA's sparsifying scheduler (options: recipe.*)"),
    ("+experiment=", CONFIG_DIR / "experiment", "paper presets (experiment=NAME works too)"),
    ("-m +sweeps=", ROOT / "sweeps", "multiruns, one per paper table/figure (sweeps/README.md)"),
    ("hydra/launcher=", CONFIG_DIR / "hydra" / "launcher", "multirun launcher (with -m)"),
)

EXAMPLES = (
    ("python -m peftbench", "quickstart: LoRA on MiniLM + Rotten Tomatoes, CPU"),
    ("python -m peftbench method=adalora model=deberta_v3_base task=rte budget=r2 seed=0", "one run"),
    ("python -m peftbench --cfg job method=adalora", "print the composed config; train nothing"),
    ("python -m peftbench -m method=lora,bitfit budget=r2,r8", "multirun: 4 jobs, all checked first"),
    ("python -m peftbench -m +sweeps=adalora_table1 hydra/launcher=slurm_gpu", "a paper table on SLURM"),
    ("python -m peftbench plan model=deberta_v3_base method=lora,adalora budget=r8", "parameter counts"),
)

HYDRA_FLAGS = (
    ("-m, --multirun", "run every combination of comma-separated values (key=a,b)"),
    ("-c, --cfg job|hydra|all", "print the composed config instead of running (with -m: every job's)"),
    ("--resolve", "with --cfg: resolve ${...} interpolations"),
    ("-p, --package PKG", "with --cfg: print only this part of the config (e.g. -p trainer)"),
    ("-i, --info [WHAT]", "Hydra's info: all|config|defaults|defaults-tree|plugins|searchpath"),
    ("--hydra-help, --version", "Hydra's own help and version"),
    ("-cd, --config-dir DIR", "an extra config folder on the search path"),
)


def options(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def defaults() -> dict[str, str]:
    """The default option of each group, read from conf/config.yaml's defaults list (``- group: option``)."""
    try:
        text = (CONFIG_DIR / "config.yaml").read_text()
    except OSError:
        return {}
    return dict(re.findall(r"^\s*-\s*([a-z_]+):\s*([A-Za-z0-9_]+)\s*(?:#.*)?$", text, flags=re.MULTILINE))


def _rows(rows: list[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max(len(left) for left, _ in rows) + 2
    return [" " * indent + left.ljust(width) + right for left, right in rows]


def main_help() -> str:
    chosen = defaults()
    lines = [
        "usage: python -m peftbench [plan|report] [-m] [--cfg job|hydra|all [--resolve] [-p PKG]] [--info [WHAT]]",
        "                           [key=value ...]",
        "",
        "Fine-tune with a PEFT method (no subcommand), plan parameter counts, or build reports. Settings are Hydra",
        "overrides key=value (group options below, or any key: trainer.lr=3e-4 method.r=4 seed=0). Bad input fails",
        "with one line and exit code 2 before anything loads.",
        "",
        "subcommands:",
        *_rows([("(none)", "train one run, or with -m every job of a multirun"),
                ("plan", "parameter counts of methods x budgets, no weights (plan --help)"),
                ("report", "tables and figures from results/ alone (report --help)")]),
        "",
        "config groups (* = default):",
    ]
    for prefix, folder, about in GROUPS:
        group = folder.name
        names = [f"{name}*" if chosen.get(group) == name else name for name in options(folder)]
        lines.append(f"  {prefix}{{{','.join(names)}}}")
        lines.append(f"      {about}")
    lines += ["", "Hydra flags:", *_rows(list(HYDRA_FLAGS)), "", "examples:"]
    for command, about in EXAMPLES:
        lines.append(f"  {command}")
        lines.append(f"      # {about}")
    lines += ["", "A run's record: results/<experiment_name>/<run-id>/run.json (re-running skips a completed run)."]
    return "\n".join(lines)


def plan_help() -> str:
    return "\n".join([
        "usage: python -m peftbench plan [key=value ...]",
        "",
        "Parameter counts (trainable, adapter, effective) for every combination of the listed methods and budgets,",
        "built on the meta device: no weights are downloaded. Without method= every registered method.",
        "",
        f"  method=a,b   one or more of: {', '.join(options(CONFIG_DIR / 'method'))}",
        f"  budget=a,b   one or more of: {', '.join(options(CONFIG_DIR / 'budget'))}",
        "  other overrides (model=, task=, method.r=, ...) apply to every row",
        "",
        "example:",
        "  python -m peftbench plan model=deberta_v3_base method=lora,adalora budget=r2,r8",
    ])


def report_help() -> str:
    return "\n".join([
        "usage: python -m peftbench report RESULTS_DIR --out REPORT_DIR [--experiment NAME] [--reference]",
        "                                  [--metrics best|final] [--params effective|trainable|adapter]",
        "",
        "Tables (md/tex/csv), figures (png/pdf) and an index README from the run records under RESULTS_DIR alone.",
        "",
        "  RESULTS_DIR          folder holding <experiment>/<run-id>/run.json",
        "  --out REPORT_DIR     report folder (created; files overwritten)",
        "  --experiment NAME    only runs of this experiment (default: all)",
        "  --reference          also compare with AdaLoRA Table 1",
        "  --metrics best|final best dev checkpoint (default, as the papers report) or end of training",
        "  --params KIND        which parameter count the #Params column shows (default: effective)",
        "",
        "example:",
        "  python -m peftbench report results --out reports/all",
    ])
