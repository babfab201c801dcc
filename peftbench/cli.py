"""Command line: ``peftbench [plan|report] [hydra flags] [hydra overrides]``; with no subcommand, train.

Flags, group options and keys are checked before Hydra runs so that a typo fails with one line and exit code 2,
before any model or data loads and before anything is written under ``results/``; a multirun composes and
validates every job before the launcher starts the first one. ``--help`` imports neither torch nor Hydra.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Hydra and OmegaConf are imported where used: --help and flag errors stay instant
    from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "conf"
GROUPS = ("method", "model", "task", "budget", "trainer", "logger", "paths", "recipe", "experiment", "paper",
          "sweeps")
SEARCHPATH = f"hydra.searchpath=[file://{ROOT}]"  # the repository root makes sweeps/ a config group


def normalise(overrides: list[str]) -> list[str]:
    """Accept ``experiment=NAME`` as ``+experiment=NAME`` (Hydra 1.3 cannot take both forms for one group)."""
    return [f"+{item}" if item.startswith("experiment=") else item for item in overrides]


def check_options(overrides: list[str]) -> None:
    """Unknown group options fail here with the list of allowed ones."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key not in GROUPS or not value:
            continue
        folder = ROOT / "sweeps" if key == "sweeps" else CONFIG_DIR / key
        allowed = sorted(p.stem for p in folder.glob("*.yaml"))
        for choice in value.split(","):
            if choice.startswith(("glob(", "choice(", "range(")):
                continue
            if choice not in allowed:
                fail(f"unknown {key} {choice!r}; choose one of: {', '.join(allowed)}")


def compose_config(overrides: list[str]) -> DictConfig:
    """The composed config for a single run, with Hydra's composition errors turned into one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except HydraException as error:
        fail(explain(error, overrides))


def explain(error: Exception, overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, OmegaConf

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


# Hydra's command-line flags (hydra/_internal/utils.py: get_args_parser): name -> (canonical, value)
# where value is 0 (a switch), 1 (takes a value) or "?" (an optional value).
FLAGS = {
    "-m": ("--multirun", 0), "--multirun": ("--multirun", 0), "-r": ("--run", 0), "--run": ("--run", 0),
    "-c": ("--cfg", 1), "--cfg": ("--cfg", 1), "--resolve": ("--resolve", 0),
    "-p": ("--package", 1), "--package": ("--package", 1), "-i": ("--info", "?"), "--info": ("--info", "?"),
    "--hydra-help": ("--hydra-help", 0), "--version": ("--version", 0),
    "-sc": ("--shell-completion", 0), "--shell-completion": ("--shell-completion", 0),
    "-cp": ("--config-path", 1), "--config-path": ("--config-path", 1),
    "-cn": ("--config-name", 1), "--config-name": ("--config-name", 1),
    "-cd": ("--config-dir", 1), "--config-dir": ("--config-dir", 1),
    "--experimental-rerun": ("--experimental-rerun", 1),
}
HELP = ("-h", "--help")
CFG_CHOICES = ("job", "hydra", "all")
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
SHOW = ("--cfg", "--info", "--hydra-help", "--version", "--shell-completion")  # print and exit, never run
OWN_CONFIG = ("--config-path", "--config-name", "--experimental-rerun")  # Hydra composes a config we don't


@dataclass
class Args:
    flags: dict[str, str | bool] = field(default_factory=dict)  # canonical name -> value (True for a switch)
    tokens: list[str] = field(default_factory=list)  # the flags as given, values included, -m/-r excluded
    overrides: list[str] = field(default_factory=list)

    @property
    def multirun(self) -> bool:
        return "--multirun" in self.flags

    def show(self) -> bool:
        return any(name in self.flags for name in SHOW)


def parse_args(argv: list[str]) -> Args:
    """Split Hydra flags from overrides; an unknown flag or a bad flag value fails with one line."""
    args, position = Args(), 0
    while position < len(argv):
        token = argv[position]
        position += 1
        if not token.startswith("-"):
            args.overrides.append(token)
            continue
        name, equals, value = token.partition("=")
        if name not in FLAGS:
            unknown_option(token, argv[position:position + 1])
        canonical, takes = FLAGS[name]
        if takes == 0 and equals:
            fail(f"option {canonical} takes no value, got {token!r}")
        if takes == 1 and not equals:
            if position == len(argv) or argv[position].startswith("-"):
                fail(f"option {canonical} needs a value" + (f": {'|'.join(CFG_CHOICES)}" if canonical == "--cfg"
                                                             else ""))
            value, position = argv[position], position + 1
        if takes == "?" and not equals and position < len(argv) and argv[position] in INFO_CHOICES:
            value, position = argv[position], position + 1
        if canonical == "--cfg" and value not in CFG_CHOICES:
            fail(f"--cfg {value!r}: choose one of {', '.join(CFG_CHOICES)}")
        if canonical == "--info" and value and value not in INFO_CHOICES:
            fail(f"--info {value!r}: choose one of {', '.join(INFO_CHOICES)}")
        args.flags[canonical] = value if takes else True
        if canonical not in ("--multirun", "--run"):
            args.tokens += [canonical, value] if takes == 1 or (takes == "?" and value) else [canonical]
    if ("--resolve" in args.flags or "--package" in args.flags) and "--cfg" not in args.flags:
        fail("--resolve and -p/--package go with --cfg job|hydra|all")
    commands = [name for name in ("--cfg", "--info", "--shell-completion") if name in args.flags]
    if len(commands) > 1:
        fail(f"use one of {' and '.join(commands)}, not both")
    if "--run" in args.flags and args.multirun:
        fail("use one of --run and --multirun, not both")
    return args


def unknown_option(token: str, following: list[str]) -> None:
    """One line for a flag Hydra does not know, with the override it probably meant (``--epochs 3``)."""
    name, equals, value = token.lstrip("-").partition("=")
    if not equals and following and "=" not in following[0] and not following[0].startswith("-"):
        value = following[0]
    keys = [f"{folder.name}.{name.replace('-', '_')}" for folder in sorted(CONFIG_DIR.iterdir()) if folder.is_dir()
            if any(line.startswith(f"{name.replace('-', '_')}:")
                   for path in folder.glob("*.yaml") for line in path.read_text().splitlines())]
    # The run-wide knobs first: `--lr` means trainer.lr, though some methods have an lr of their own.
    keys.sort(key=lambda key: 0 if key.startswith("trainer.") else 1)
    top = CONFIG_DIR / "config.yaml"
    if any(line.startswith(f"{name.replace('-', '_')}:") for line in top.read_text().splitlines()):
        keys.insert(0, name.replace("-", "_"))
    hint = f"did you mean {keys[0]}={value or '...'}? " if keys else ""
    fail(f"unknown option {token.partition('=')[0]!r}; {hint}settings are key=value overrides, flags are Hydra's "
         "(-m, --cfg job|hydra|all, --resolve, -p, --info); see python -m peftbench --help")


def searchpath(args: Args) -> str:
    """The ``hydra.searchpath`` override that the jobs of this command line are composed with."""
    given = [o for o in args.overrides if o.startswith("hydra.searchpath=")]
    if given:
        return given[-1]
    extra = args.flags.get("--config-dir")
    return f"hydra.searchpath=[file://{ROOT},file://{Path(str(extra)).resolve()}]" if extra else SEARCHPATH


def is_hydra_override(item: str) -> bool:
    key = item.lstrip("+~").partition("=")[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def is_group_override(item: str, folders: list[Path]) -> bool:
    """Whether an override picks a config (``method=lora``, ``+experiment=x``, ``hydra/launcher=slurm``) rather
    than setting a value (``seed=0``, ``trainer.lr=1e-3``); Hydra applies values after composing the groups."""
    key = item.lstrip("+~").partition("=")[0]
    if "/" in key or "@" in key:
        return True
    return "." not in key and any((folder / key).is_dir() for folder in folders)


def expand_jobs(overrides: list[str], path_override: str) -> list[list[str]]:
    """The overrides of every job of a multirun, in launch order: what Hydra's BasicSweeper builds from the
    command line and the ``hydra.sweeper.params`` of the composed config (e.g. ``+sweeps=NAME``)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    task = [o for o in overrides if not is_hydra_override(o)]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            parsed = parser.parse_overrides(task)
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            sweep = compose("config", overrides=[*fixed, path_override], return_hydra_config=True)
            params = sweep.hydra.sweeper.get("params") or {}
            arguments = parser.parse_overrides([*(f"{key}={value}" for key, value in params.items()), *task])
            (jobs,) = BasicSweeper.split_arguments(arguments, None)
            return jobs
    except HydraException as error:
        fail(explain(error, [*[o for o in task if "," not in o], path_override]))


def check_jobs(overrides: list[str], path_override: str) -> int:
    """Compose and validate every job of a multirun before any is launched; the first bad one fails with one
    line naming its overrides. Jobs that differ only in values (``seed=0,1,2``) share one composition."""
    import copy

    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    jobs = expand_jobs(overrides, path_override)  # a bad fixed override fails here, before torch is imported
    from peftbench.budget import BudgetError
    from peftbench.config import ConfigError, validate  # torch-free: method classes load on first use
    from peftbench.tasks.base import DataError

    folders = [CONFIG_DIR, ROOT, *(Path(p.removeprefix("file://")) for p in
                                   path_override.partition("=[")[2].rstrip("]").split(","))]
    parser = OverridesParser.create()
    composed: dict[tuple[str, ...], DictConfig | Exception] = {}
    failures = []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for number, job in enumerate(jobs):
            groups = tuple(o for o in job if is_group_override(o, folders))
            try:
                if groups not in composed:
                    try:
                        composed[groups] = compose("config", overrides=[*groups, path_override])
                    except HydraException as error:
                        composed[groups] = error
                base = composed[groups]
                if isinstance(base, Exception):
                    raise base
                cfg = copy.deepcopy(base)
                values = [o for o in job if not is_group_override(o, folders)]
                ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(values), cfg)
                run = validate(cfg)
                from peftbench.run import preflight  # torch: only once a job's config is valid

                preflight(run)  # data sources, the budget and the schedule against the run's steps
            except (HydraException, ConfigError, DataError, BudgetError) as error:
                failures.append((number, job, error))
    if failures:
        number, job, error = failures[0]
        hydra_error = isinstance(error, HydraException)
        message = explain(error, [*job, path_override]) if hydra_error else str(error)
        varying = [o for o in job if any(o not in other for other in jobs)] or job
        more = f" ({len(failures) - 1} more of the {len(jobs)} jobs fail)" if len(failures) > 1 else ""
        fail(f"job {number} ({' '.join(varying)}): {message}{more}; no job was launched")
    return len(jobs)


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
    from peftbench.summary import print_summary

    record = run_recipe(run)
    print_summary(record)
    write_report(run.paths, run.experiment_name)


def settle_collector() -> None:
    """Once the libraries are imported: their ~600k objects live until exit, so move them out of the cyclic
    collector's sight (``gc.freeze``) and switch it back on for what the run itself creates. ``main`` switches it
    off for the imports, which would otherwise trigger ~10 full collections of an ever larger heap of objects;
    the interpreter's collections at exit skip frozen objects too. Together 1.8-3.3 s of a quickstart process. The
    first call freezes; later jobs of an in-process multirun only switch it on, so that nothing a finished job
    left for the collector is frozen for good."""
    global _settled
    if not _settled:
        gc.freeze()
        _settled = True
    gc.enable()


_settled = False


def run_recipe(run) -> dict:
    """Run the recipe; a preempted run (checkpoint and record written) ends with one line and 128 + the signal
    number, so that a scheduler sees a job killed by that signal (submitit requeues from its own handler, which
    the training loop calls before raising)."""
    from peftbench.checkpoint import Preempted
    from peftbench.recipes import get_recipe

    recipe = get_recipe(run.recipe.name)
    settle_collector()
    try:
        return recipe(run)
    except Preempted as error:
        signum = (error.flag.signum if error.flag is not None else None) or signal.SIGTERM
        print(f"peftbench: preempted: {error}; rerun the same command to resume", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(128 + int(signum)) from None


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


def run_hydra(argv: list[str]) -> None:
    """Hand the command line to ``hydra.main``, as multiruns and --cfg/--info do; jobs run their recipe."""
    import hydra

    from peftbench.recipes import get_recipe

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
    def main(cfg: DictConfig) -> None:
        recipe = get_recipe(str(cfg.recipe.name))
        settle_collector()
        recipe(cfg)

    # The repository root on the search path makes sweeps/ a config group: `-m +sweeps=adalora_table1`.
    searchpath = [] if any(a.startswith("hydra.searchpath") for a in argv) else [SEARCHPATH]
    sys.argv = [sys.argv[0], *argv, *searchpath]
    main()


def run_multirun(argv: list[str]) -> None:
    run_hydra(argv)


def show(args: Args, overrides: list[str]) -> None:
    """--cfg/--info/--hydra-help/--version: Hydra prints and nothing runs. With -m, --cfg and --info are shown
    for every job of the sweep (Hydra itself allows only one of -m, --cfg and --info)."""
    if not (args.multirun and ("--cfg" in args.flags or "--info" in args.flags)):
        return run_hydra([*args.tokens, *overrides])
    hydra_overrides = [o for o in overrides if is_hydra_override(o)]
    jobs = expand_jobs(overrides, searchpath(args))
    import logging

    handlers = list(logging.root.handlers)
    for number, job in enumerate(jobs):
        print(f"# job {number} of {len(jobs)}: {' '.join(job)}", flush=True)
        run_hydra([*args.tokens, *job, *hydra_overrides])
        sys.stdout.flush()
        logging.root.handlers[:] = handlers  # --info adds a stdout handler each time: lines would repeat


def plan(overrides: list[str]) -> None:
    """Parameter counts for every combination of the listed methods and budgets (``method=lora,adalora``);
    without ``method=`` every registered method."""
    from peftbench.planner import run_plan

    run_plan(overrides)


def emit(text: str) -> None:
    """Print help text; a reader that stops early (``--help | head``) ends the output quietly, not with a
    BrokenPipeError traceback (stdout goes to /dev/null so the interpreter's final flush cannot fail again)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["plan"], ["report"]):
        from peftbench import help

        command, rest = argv[0], argv[1:]
        if any(a in HELP for a in rest):
            return emit(help.plan_help() if command == "plan" else help.report_help())
        if command == "report":
            from peftbench.analysis.__main__ import main as report_main

            raise SystemExit(report_main(argv))
        for position, token in enumerate(rest):
            if token.startswith("-"):
                unknown_option(token, rest[position + 1:position + 2])
        return plan(normalise(rest))
    if any(a in HELP for a in argv):
        from peftbench import help

        return emit(help.main_help())
    args = parse_args(argv)
    overrides = normalise(args.overrides)
    check_options(overrides)
    if args.show():
        return show(args, overrides)
    if any(name in args.flags for name in OWN_CONFIG):  # Hydra composes: its jobs validate in their recipe
        return run_hydra([*args.tokens, *(["-m"] if args.multirun else []), *overrides])
    if args.multirun:
        gc.disable()  # until the first job's imports are done (settle_collector)
        check_jobs(overrides, searchpath(args))
        return run_hydra(["-m", *args.tokens, *overrides])
    given = any(o.startswith("hydra.searchpath=") for o in overrides)
    gc.disable()  # until the recipe's imports are done (settle_collector)
    run_single([*overrides, *([] if given else [searchpath(args)])])


if __name__ == "__main__":
    main()
