"""Launcher configs and sweep presets compose against the real conf/ tree (no cluster needed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
# Runs per sweep: the product of the axes in its hydra.sweeper.params.
EXPECTED_RUNS = {"adalora_table1": 4 * 8 * 2 * 5, "adalora_table2": 2 * 4 * 2 * 5, "adalora_table3": 2 * 2 * 4 * 3,
                 "sora_glue": 3 * 8 * 5, "sora_sparsity": 6}


def compose_with(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("launcher", ["slurm", "slurm_gpu"])
def test_launcher_config_selects_submitit_slurm(launcher: str) -> None:
    cfg = compose_with([f"hydra/launcher={launcher}", "experiment_name=x", "hydra.sweep.dir=/tmp/sweep"])
    options = cfg.hydra.launcher
    assert options._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert options.nodes == 1 and options.tasks_per_node == 1
    assert options.max_num_timeout >= 1 and options.signal_delay_s > 0
    assert options.submitit_folder == "/tmp/sweep/submitit/%j"
    assert options.name == "x"
    assert (options.gpus_per_node == 1) == (launcher == "slurm_gpu")


def test_every_sweep_is_listed() -> None:
    assert {path.stem for path in SWEEPS} == set(EXPECTED_RUNS)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda path: path.stem)
def test_sweep_names_existing_options_and_counts(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# @package _global_"), "sweeps are global presets selected with +sweeps=NAME"
    assert f"+sweeps={path.stem}" in text, "the header must give the exact command"
    params = yaml.safe_load(text)["hydra"]["sweeper"]["params"]
    axes = {key: str(value).split(",") for key, value in params.items()}
    for group, choices in axes.items():
        if (CONF / group).is_dir():
            allowed = {option.stem for option in (CONF / group).glob("*.yaml")}
            assert set(choices) <= allowed, f"{group}: {set(choices) - allowed} not in conf/{group}/"
    assert math.prod(len(choices) for choices in axes.values()) == EXPECTED_RUNS[path.stem]
    # The first combination composes, so every key in the preset exists.
    first = [f"{key}={choices[0]}" for key, choices in axes.items()]
    cfg = compose_with([f"hydra.searchpath=[file://{ROOT}]", f"+sweeps={path.stem}", *first])
    assert cfg.experiment_name == path.stem
