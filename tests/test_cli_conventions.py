"""Command-line conventions: --help without heavy imports, Hydra's flags for single runs and multiruns, one-line
errors for unknown flags, multiruns validated job by job before launch, preempted single runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import ROOT

from peftbench import cli, help

HEAVY = {"torch", "transformers", "hydra", "omegaconf", "peft", "accelerate", "datasets"}


def peftbench(*args: str, cwd: Path, importtime: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PEFTBENCH_ROOT": str(cwd), "PYTHONPATH": str(ROOT)}
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "peftbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def imported(stderr: str) -> set[str]:
    """Top-level packages named by ``-X importtime`` lines (``import time: self | cumulative | module``)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_subcommands_groups_options_and_examples_without_heavy_imports(tmp_path, flag) -> None:
    started = time.perf_counter()
    result = peftbench(flag, cwd=tmp_path, importtime=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.startswith("usage: python -m peftbench")
    assert "  plan " in out and "  report " in out
    for folder in [*(ROOT / "conf" / g for g in ("method", "model", "task", "budget", "trainer", "logger", "paths",
                                                  "paper", "experiment")), ROOT / "sweeps"]:
        stems = sorted(p.stem for p in folder.glob("*.yaml"))
        assert stems and "{" + ",".join(stems) + "}" in out.replace("*", ""), folder
    assert "lora*" in out  # the default option is marked
    examples = out.split("examples:", 1)[1].count("  python -m peftbench")
    assert 4 <= examples <= 6
    assert not imported(result.stderr) & HEAVY, imported(result.stderr) & HEAVY
    assert elapsed < 2.0, elapsed


def test_help_options_are_globbed_when_asked(tmp_path, monkeypatch) -> None:
    (tmp_path / "alpha.yaml").write_text("{}\n")
    monkeypatch.setattr(help, "GROUPS", (("thing=", tmp_path, "a new group"),))
    assert "thing={alpha}" in help.main_help()
    (tmp_path / "beta.yaml").write_text("{}\n")
    assert "thing={alpha,beta}" in help.main_help()


@pytest.mark.parametrize(("command", "usage"), [("plan", "usage: python -m peftbench plan"),
                                                ("report", "usage: python -m peftbench report RESULTS_DIR")])
def test_subcommands_have_their_own_help(tmp_path, command: str, usage: str) -> None:
    result = peftbench(command, "--help", cwd=tmp_path, importtime=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(usage)
    assert not imported(result.stderr) & HEAVY


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--foo"], "unknown option '--foo'; settings are key=value overrides"),
        (["--epochs", "3"], "unknown option '--epochs'; did you mean trainer.epochs=3?"),
        (["method=lora", "--lr=1e-3"], "unknown option '--lr'; did you mean trainer.lr=1e-3?"),
        (["-m", "method=lora,bitfit", "--foo"], "unknown option '--foo'"),
        (["plan", "--foo"], "unknown option '--foo'"),
        (["--cfg", "jobs"], "--cfg 'jobs': choose one of job, hydra, all"),
        (["--cfg"], "option --cfg needs a value: job|hydra|all"),
        (["-p", "trainer"], "--resolve and -p/--package go with --cfg"),
    ],
)
def test_unknown_flag_fails_with_one_line_before_heavy_imports(tmp_path, args: list[str], message: str) -> None:
    result = peftbench(*args, cwd=tmp_path, importtime=True)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = errors(result.stderr)
    assert line.startswith("peftbench: error: ") and message in line, line
    assert not imported(result.stderr) & HEAVY
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.lr=-1"], "trainer.lr must be positive and finite"),
        (["method=lora", "method.r=-1"], "method.r must be a positive rank"),
        (["method=adalora", "budget=r8", "method.init_rank=3"], "budget.rank=8 (r8) sets adalora.target_rank"),
        (["method=qlora"], "add model.quantization=nf4"),  # a capability, declared in qlora's register call
        (["recipe=sora_sparsity", "method=lora"], "method lora cannot be sparsified"),
        (["-m", "seed=0,1", "trainer.lr=-1"], "trainer.lr must be positive and finite"),
        (["plan", "model=deberta_v3_base", "trainer.lr=-1"], "trainer.lr must be positive and finite"),
    ],
)
def test_config_errors_fail_before_torch_is_imported(tmp_path, args: list[str], message: str) -> None:
    """validate() reads method configs and capabilities from the registry without importing a method class: a
    bad value fails in well under a second instead of after torch's seconds of imports."""
    result = peftbench(*args, cwd=tmp_path, importtime=True)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = errors(result.stderr)
    assert line.startswith("peftbench: error: ") and message in line, line
    heavy = imported(result.stderr) & {"torch", "transformers", "peft", "accelerate", "datasets"}
    assert not heavy, heavy


def test_cfg_job_prints_the_composed_config_and_trains_nothing(tmp_path) -> None:
    result = peftbench("--cfg", "job", "method=adalora", "budget=r2", cwd=tmp_path, importtime=True)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = yaml.safe_load(result.stdout)
    assert cfg["method"]["name"] == "adalora" and "hydra" not in cfg and cfg["budget"]["rank"] == 2
    assert "torch" not in imported(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_cfg_with_package_and_resolve(tmp_path) -> None:
    result = peftbench("--cfg", "job", "-p", "paths", "--resolve", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("# @package paths")
    assert "${" not in result.stdout and str(tmp_path) in result.stdout
    hydra = peftbench("-c", "hydra", "+sweeps=adalora_table1", cwd=tmp_path)
    assert hydra.returncode == 0, hydra.stderr[-2000:]
    assert "sweeper:" in hydra.stdout and "lora,adalora" in hydra.stdout


def test_multirun_cfg_prints_every_job(tmp_path) -> None:
    result = peftbench("-m", "--cfg", "job", "method=lora,bitfit", "-p", "method", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    headers = [line for line in result.stdout.splitlines() if line.startswith("# job")]
    assert headers == ["# job 0 of 2: method=lora", "# job 1 of 2: method=bitfit"]
    assert "name: lora" in result.stdout and "name: bitfit" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_info_prints_hydras_info(tmp_path) -> None:
    result = peftbench("--info", "searchpath", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"file://{ROOT}/conf" in result.stdout and f"file://{ROOT}" in result.stdout


def test_sweep_expansion_matches_the_basic_sweeper() -> None:
    jobs = cli.expand_jobs(["+sweeps=adalora_table1"], cli.SEARCHPATH)
    assert len(jobs) == 320  # 4 methods x 8 tasks x 2 budgets x 5 seeds
    assert {"method=lora", "task=mnli", "budget=r2", "seed=0", "+sweeps=adalora_table1"} <= set(jobs[0])
    narrowed = cli.expand_jobs(["+sweeps=adalora_table1", "seed=0", "task=rte"], cli.SEARCHPATH)
    assert len(narrowed) == 8 and all("seed=0" in job and "task=rte" in job for job in narrowed)
    assert cli.expand_jobs(["method=lora,bitfit", "budget=r2,r8", "seed=1"], cli.SEARCHPATH) == [
        ["method=lora", "budget=r2", "seed=1"], ["method=lora", "budget=r8", "seed=1"],
        ["method=bitfit", "budget=r2", "seed=1"], ["method=bitfit", "budget=r8", "seed=1"]]


def test_every_job_of_a_paper_sweep_validates_in_seconds(monkeypatch) -> None:
    import peftbench.config  # noqa: F401  (torch; not part of the measured time)

    # The sweep reads GLUE from the hub: with the hub reachable (offline flags unset) the source check passes
    # without touching the network; offline it rightly fails every job (tests/test_bad_input_corpus.py).
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.perf_counter()
    assert cli.check_jobs(["+sweeps=adalora_table1"], cli.SEARCHPATH) == 320
    assert time.perf_counter() - started < 120  # about 5-15 s on a shared 2-core machine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.lr_rate=1"], "peftbench: error: trainer.lr_rate: unknown key; allowed keys in trainer:"),
        (["trainer.lr=-1"], "peftbench: error: job 0 (method=lora): trainer.lr must be positive"),
        (["method.r=4"], "peftbench: error: job 1 (method=bitfit): method.r: unknown key"),
    ],
)
def test_multirun_validates_every_job_before_launching(tmp_path, args: list[str], message: str) -> None:
    result = peftbench("-m", "method=lora,bitfit", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(message), line
    assert list(tmp_path.iterdir()) == []  # no results/, no logs/multirun/: nothing launched


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGUSR1, 138), (None, 143)])
def test_preempted_single_run_ends_with_one_line_and_128_plus_signal(monkeypatch, capsys, signum, code) -> None:
    from types import SimpleNamespace

    from peftbench import recipes
    from peftbench.checkpoint import Preempted, StopFlag

    flag = None
    if signum is not None:
        flag = StopFlag()
        flag.signum = signum

    def preempted(run):
        raise Preempted("stopped by SIGUSR1 after step 3", flag)

    monkeypatch.setattr(recipes, "get_recipe", lambda name: preempted)
    with pytest.raises(SystemExit) as stopped:
        cli.run_recipe(SimpleNamespace(recipe=SimpleNamespace(name="train")))
    assert stopped.value.code == code
    assert capsys.readouterr().err == (
        "peftbench: preempted: stopped by SIGUSR1 after step 3; rerun the same command to resume\n")


def test_help_into_a_closed_pipe_ends_quietly() -> None:
    """`python -m peftbench --help | head`: the reader leaves early; no BrokenPipeError traceback."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "peftbench", "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()  # no reader left: the child's first write fails with EPIPE
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0 and b"Traceback" not in err, err.decode()
