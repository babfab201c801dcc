"""Command line: ``peftbench [plan|report] [hydra overrides]``; with no subcommand, train (the quickstart).

Group options and keys are checked before Hydra runs so that a typo fails with one line and exit code 2,
before any model or data loads and before anything is written under ``results/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "conf"
GROUPS = ("method", "model", "task", "budget", "trainer", "logger", "paths", "experiment", "paper")


def normalise(overrides: list[str]) -> list[str]:
    """Accept ``experiment=NAME`` as ``+experiment=NAME`` (Hydra 1.3 cannot take both forms for one group)."""
    return [f"+{item}" if item.startswith("experiment=") else item for item in overrides]


def check_options(overrides: list[str]) -> None:
    """Unknown group options fail here with the list of allowed ones."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key not in GROUPS or not value:
            continue
        allowed = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice.startswith(("glob(", "choice(", "range(")):
                continue
            if choice not in allowed:
                fail(f"unknown {key} {choice!r}; choose one of: {', '.join(allowed)}")


def compose_config(overrides: list[str]) -> DictConfig:
    """The composed config for a single run, with Hydra's composition errors turned into one line."""
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except HydraException as error:
        fail(explain(error, overrides))


def explain(error: Exception, overrides: list[str]) -> str:
    message = str(error).splitlines()[0]
    if message.startswith("Could not override '"):
        key = message.split("'")[1]
        group, _, leaf = key.rpartition(".")
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            base = compose("config", overrides=[o for o in overrides if not o.startswith(key + "=")])
        node = OmegaConf.select(base, group) if group else base
        allowed = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "?"
        return f"{key}: unknown key; allowed keys in {group or 'the top level'}: {allowed}"
    return message


def fail(message: str) -> None:
    print(f"peftbench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_single(overrides: list[str]) -> None:
    from peftbench.budget import BudgetError
    from peftbench.config import ConfigError, validate
    from peftbench.tasks.base import DataError

    cfg = compose_config(overrides)
    try:
        run = validate(cfg)
        from peftbench.run import preflight  # heavy imports only after the config is valid

        run = preflight(run)
    except (ConfigError, BudgetError, DataError, FileNotFoundError) as error:
        fail(str(error))
    from peftbench.recipes import get_recipe
    from peftbench.summary import print_summary

    record = get_recipe(run.recipe.name)(run)
    print_summary(record)
    write_report(run.paths, run.experiment_name)


def write_report(paths, experiment: str) -> None:
    """Tables and figures of the experiment this run belongs to, under ``<report_dir>/<experiment>``."""
    from peftbench.analysis import report

    out = Path(paths.report_dir) / experiment
    try:
        written = report(paths.results_dir, out, experiment=experiment)
    except Exception as error:  # a broken plot must not hide a finished run
        print(f"report not written ({type(error).__name__}: {error})", file=sys.stderr)
        return
    figures = [str(p) for p in written if p.suffix == ".png"]
    print(f"report: {out / 'README.md'} ({len(written)} files); figures: {', '.join(figures) or 'none'}")


def run_multirun(argv: list[str]) -> None:
    import hydra

    from peftbench.recipes import get_recipe

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
    def main(cfg: DictConfig) -> None:
        get_recipe(str(cfg.recipe.name))(cfg)

    # The repository root on the search path makes sweeps/ a config group: `-m +sweeps=adalora_table1`.
    searchpath = [] if any(a.startswith("hydra.searchpath") for a in argv) else [f"hydra.searchpath=[file://{ROOT}]"]
    sys.argv = [sys.argv[0], *argv, *searchpath]
    main()


def plan(overrides: list[str]) -> None:
    """Parameter counts for every combination of the listed methods and budgets (``method=lora,adalora``);
    without ``method=`` every registered method."""
    from peftbench.planner import run_plan

    run_plan(overrides)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:
        return plan(normalise(argv[1:]))
    if argv[:1] == ["report"]:
        from peftbench.analysis.__main__ import main as report_main

        raise SystemExit(report_main(argv))
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = normalise([a for a in argv if not a.startswith("-")])
    check_options(overrides)
    if multirun:
        return run_multirun(normalise(argv))
    run_single(overrides)


if __name__ == "__main__":
    main()
