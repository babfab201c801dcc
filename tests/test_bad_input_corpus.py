"""A corpus of bad invocations: each fails with exit code 2 and one stderr line that names the key and the value,
before any model or data loads, and writes nothing under the root (``results/``, ``reports/``, ``logs/``).

Most cases call ``peftbench.cli.main`` in-process (every check runs before heavy work; a case that got through
would reach ``run_recipe`` / ``run_hydra``, which are replaced by a sentinel that fails the test). A few cases run
``python -m peftbench`` as real subprocesses, started together when the module's tests start, so that their
interpreter start-up overlaps the in-process cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

import peftbench.cli as cli
import peftbench.config  # noqa: F401 - the method registry and torch, imported once at collection
import peftbench.run  # noqa: F401 - preflight's imports (accelerate, the task families)

# Lines a third-party import prints on stderr on some machines, outside peftbench's control: bitsandbytes
# (imported by peft) on CPUs with AVX512-BF16 and without the `kernels` package.
NOISE = ("Failed to load CPU gemm_4bit_forward",)

RTE_HEADER = "index\tsentence1\tsentence2\tlabel"
RTE_ROWS = ["0\tA man eats.\tA person eats.\tentailment", "1\tIt rains.\tIt is sunny.\tnot_entailment",
            "2\tCats purr.\tAnimals purr.\tentailment"]
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
STSB_ROWS = ["0\tmain\tx\t2012\t1\tnone\tnone\tA plane takes off.\tA plane is taking off.\t5.000",
             "1\tmain\tx\t2012\t2\tnone\tnone\tA man plays.\tA man is playing.\t3.800"]

# folder name -> {relative file: text}; each a copy of a valid GLUE folder with one defect
GLUE_FIXTURES = {
    "good": {"RTE/train.tsv": [RTE_HEADER, *RTE_ROWS], "RTE/dev.tsv": [RTE_HEADER, *RTE_ROWS],
             "STS-B/train.tsv": [STSB_HEADER, *STSB_ROWS], "STS-B/dev.tsv": [STSB_HEADER, *STSB_ROWS]},
    "missing_column": {"RTE/train.tsv": ["index\tsentence1\tsentence2\tlabl", *RTE_ROWS],
                       "RTE/dev.tsv": [RTE_HEADER, *RTE_ROWS]},
    "bad_label": {"RTE/train.tsv": [RTE_HEADER, *RTE_ROWS[:2], "2\tCats purr.\tAnimals purr.\tentailmnet"],
                  "RTE/dev.tsv": [RTE_HEADER, *RTE_ROWS]},
    "lost_tab": {"RTE/train.tsv": [RTE_HEADER, *RTE_ROWS],
                 "RTE/dev.tsv": [RTE_HEADER, RTE_ROWS[0], "1\tIt rains. It is sunny.\tnot_entailment"]},
    "class_index": {"RTE/train.tsv": [RTE_HEADER, *RTE_ROWS, "3\tA.\tB.\t7"], "RTE/dev.tsv": [RTE_HEADER, *RTE_ROWS]},
    "empty_train": {"RTE/train.tsv": [RTE_HEADER], "RTE/dev.tsv": [RTE_HEADER, *RTE_ROWS]},
    "bad_score": {"STS-B/train.tsv": [STSB_HEADER, STSB_ROWS[0], STSB_ROWS[1].replace("3.800", "3,8")],
                  "STS-B/dev.tsv": [STSB_HEADER, *STSB_ROWS]},
    "no_dev": {"RTE/train.tsv": [RTE_HEADER, *RTE_ROWS]},
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Files the cases read (outside the root, which must stay empty): damaged GLUE folders and a plain file."""
    folder = tmp_path_factory.mktemp("inputs")
    for name, files in GLUE_FIXTURES.items():
        for relative, lines in files.items():
            path = folder / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
    (folder / "afile").write_text("not a folder\n")
    return folder


def environment(root: Path, inputs: Path) -> dict[str, str]:
    """Offline, an empty Hugging Face cache, and the root as ``paths.root_dir``."""
    return {"PEFTBENCH_ROOT": str(root), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "HF_HOME": str(inputs / "hf_home"), "HF_DATASETS_CACHE": str(inputs / "hf_home" / "datasets"),
            "HF_HUB_CACHE": str(inputs / "hf_home" / "hub"), "WANDB_MODE": "disabled"}


# (id, argv, substrings the one stderr line must contain). {in} is the inputs folder.
CASES = [
    # trainer: ranges of every numeric option, types
    ("trainer.max_grad_norm", ["trainer.max_grad_norm=-1"], ["trainer.max_grad_norm", "-1"]),
    ("trainer.weight_decay", ["trainer.weight_decay=-0.1"], ["trainer.weight_decay", "-0.1"]),
    ("trainer.warmup_steps", ["trainer.warmup_steps=-5"], ["trainer.warmup_steps", "-5"]),
    ("trainer.checkpoint_every", ["trainer.checkpoint_every=-1"], ["trainer.checkpoint_every", "-1"]),
    ("trainer.num_workers", ["trainer.num_workers=-1"], ["trainer.num_workers", "-1"]),
    ("trainer.eval_batch_size", ["trainer.eval_batch_size=0"], ["trainer.eval_batch_size", "0"]),
    ("trainer.batch_size", ["trainer.batch_size=0"], ["trainer.batch_size", "0"]),
    ("trainer.gradient_accumulation_steps", ["trainer.gradient_accumulation_steps=0"],
     ["trainer.gradient_accumulation_steps", "0"]),
    ("trainer.lr-nan", ["trainer.lr=nan"], ["trainer.lr", "nan"]),
    ("trainer.warmup_ratio", ["trainer.warmup_ratio=1.5"], ["trainer.warmup_ratio", "1.5"]),
    ("trainer.max_steps", ["trainer.max_steps=0"], ["trainer.max_steps", "0"]),
    ("trainer.eval_every", ["trainer.eval_every=-3"], ["trainer.eval_every", "-3"]),
    ("trainer.epochs-type", ["trainer.epochs=two"], ["trainer.epochs", "two"]),
    ("trainer.mixed_precision", ["trainer.mixed_precision=fp8"], ["trainer.mixed_precision", "fp8"]),
    ("trainer.unknown-key", ["+trainer.lrr=1"], ["trainer.lrr", "did you mean 'lr'"]),
    # booleans accept only booleans
    ("trainer.cpu-yes", ["trainer.cpu=yes"], ["trainer.cpu", "'yes'", "not a boolean"]),
    ("trainer.cpu-1", ["trainer.cpu=1"], ["trainer.cpu", "1", "not a boolean"]),
    ("force-maybe", ["force=maybe"], ["force", "'maybe'", "not a boolean"]),
    ("force-no", ["force=no"], ["force", "'no'", "not a boolean"]),
    ("method.bool", ["method=sora", "method.threshold_times_lr=maybe"], ["method.threshold_times_lr", "'maybe'"]),
    # top-level keys
    ("seed-negative", ["seed=-1"], ["seed", "-1"]),
    ("seed-text", ["seed=abc"], ["seed", "'abc'"]),
    ("seed-float", ["seed=1.5"], ["seed", "1.5"]),
    ("experiment_name", ["experiment_name=../escape"], ["experiment_name", "'../escape'"]),
    ("top-level-unknown", ["+epochs=3"], ["unknown top-level key", "epochs"]),
    ("top-level-no-plus", ["epochs=3"], ["epochs", "unknown key"]),
    # method: options, values, schedule against the run's total steps
    ("method-unknown", ["method=lorax"], ["method", "'lorax'"]),
    ("method.r", ["method.r=-1"], ["method.r", "-1"]),
    ("method.dropout", ["method.dropout=1.5"], ["method.dropout", "1.5"]),
    ("method.delta_t", ["method=adalora", "method.delta_t=0"], ["delta_t", "0"]),
    ("adalora-schedule", ["method=adalora"], ["method.t_i=600", "method.t_f=1800", "T=126"]),
    ("adalora-schedule-max_steps", ["method=adalora", "method.t_i=5", "method.t_f=5", "trainer.max_steps=10"],
     ["method.t_i=5", "T=10", "trainer.max_steps=10"]),
    ("adalora-schedule-glue", ["method=adalora", "task=rte", "data_dir={in}/good", "method.t_i=2", "method.t_f=1"],
     ["method.t_i=2", "T=2", "over 3 training examples"]),
    # model
    ("model-unknown", ["model=gpt5"], ["model", "'gpt5'"]),
    ("model.quantization", ["model.quantization=int8"], ["model.quantization", "'int8'"]),
    ("model.targets", ["+model.targets.attention=x"], ["model.targets", "attention"]),
    # task
    ("task-unknown", ["task=squadx"], ["task", "'squadx'"]),
    ("task.max_length", ["task.max_length=0"], ["task.max_length", "0"]),
    ("task.max_train_samples", ["task.max_train_samples=-2"], ["task.max_train_samples", "-2"]),
    ("task.split_seed", ["task.split_seed=-1"], ["task.split_seed", "-1"]),
    ("task.protocol", ["task.protocol=glue"], ["task.protocol", "'glue'"]),
    ("protocol-vs-task", ["task.protocol=sora"], ["task.protocol=sora", "rotten_tomatoes"]),
    ("hub-offline", ["task=rte"], ["task=rte", "HF_DATASETS_OFFLINE", "data_dir="]),
    ("data_dir-missing", ["task=cola", "data_dir={in}/nowhere"], ["data_dir=", "no folder CoLA/"]),
    ("data_dir-no-dev", ["task=rte", "data_dir={in}/no_dev"], ["data_dir=", "lacks dev.tsv"]),
    # data files with a bad row: the file, the line and what is wrong
    ("row-missing-column", ["task=rte", "data_dir={in}/missing_column"], ["train.tsv", "line 1", "'label'"]),
    ("row-bad-label", ["task=rte", "data_dir={in}/bad_label"], ["RTE/train.tsv", "line 4", "'entailmnet'"]),
    ("row-lost-tab", ["task=rte", "data_dir={in}/lost_tab"], ["RTE/dev.tsv", "line 3", "3 tab-separated fields"]),
    ("row-class-index", ["task=rte", "data_dir={in}/class_index"], ["RTE/train.tsv", "line 5", "'7'"]),
    ("row-bad-score", ["task=stsb", "data_dir={in}/bad_score"], ["STS-B/train.tsv", "line 3", "'3,8'"]),
    ("empty-train", ["task=rte", "data_dir={in}/empty_train"], ["RTE/train.tsv", "no examples"]),
    # budget
    ("budget-unknown", ["budget=r9"], ["budget", "'r9'"]),
    ("budget.max_percent", ["budget.max_percent=200"], ["budget.max_percent", "200"]),
    ("budget.rank", ["budget.rank=0"], ["budget.rank", "0"]),
    ("budget-cap", ["budget.max_trainable_params=10"], ["over the cap of 10"]),
    # logger
    ("logger-unknown", ["logger=tensorboard"], ["logger", "'tensorboard'"]),
    ("logger.name", ["logger.name=tensorboard"], ["logger.name", "'tensorboard'"]),
    # paths
    ("paths.results_dir-file", ["paths.results_dir={in}/afile"], ["paths.results_dir", "afile", "is a file"]),
    ("paths.report_dir-under-file", ["paths.report_dir={in}/afile/reports"], ["paths.report_dir", "afile"]),
    ("paths.log_dir-empty", ["paths.log_dir="], ["paths.log_dir", "''"]),
    # recipe
    ("recipe-vs-method", ["recipe=sora_sparsity", "method=lora"], ["recipe=sora_sparsity", "lora"]),
    ("recipe.stage_epochs", ["recipe=sora_sparsity", "method=sora", "recipe.stage_epochs=0"],
     ["recipe.", "stage_epochs", "0"]),
    ("recipe-unknown", ["recipe=nope"], ["recipe", "nope"]),
    # multirun: every job is checked before the first one starts
    ("multirun-seed", ["-m", "seed=0,-1"], ["job 1", "seed=-1", "no job was launched"]),
    ("multirun-trainer", ["-m", "trainer.max_grad_norm=1,-1"], ["job 1", "trainer.max_grad_norm", "-1"]),
    ("multirun-force", ["-m", "force=true,maybe"], ["job 1", "force", "'maybe'"]),
    ("multirun-method", ["-m", "method=lora,lorax"], ["method", "'lorax'"]),
    # plan, report, flags
    ("plan-key", ["plan", "trainer.lrr=1"], ["trainer.lrr", "unknown key"]),
    ("plan-method", ["plan", "method=lorax"], ["method", "'lorax'"]),
    ("plan-value", ["plan", "method=lora", "method.r=-1"], ["method.r", "-1"]),
    ("report-missing", ["report", "{in}/no_results", "--out", "reports/x"], ["no_results"]),
    ("flag-cfg", ["--cfg", "nope"], ["--cfg", "'nope'"]),
]

# Valid neighbours of the cases above: they pass every check and reach the recipe (the sentinel).
ACCEPTED = [
    ["trainer.max_grad_norm=null", "trainer.warmup_steps=0", "trainer.cpu=true", "force=false"],
    ["method=adalora", "method.t_i=10", "method.t_f=20"],
    ["method=adalora", "task=rte", "data_dir={in}/good", "method.t_i=1", "method.t_f=1", "trainer.epochs=3"],
    ["task=stsb", "data_dir={in}/good", "experiment_name=stsb-1.0"],
]

# The same checks through a real interpreter: `python -m peftbench ...`
SUBPROCESS_CASES = [
    ("sub-trainer", ["trainer.max_grad_norm=-1"], ["trainer.max_grad_norm", "-1"]),
    ("sub-schedule", ["method=adalora"], ["method.t_i=600", "T=126"]),
    ("sub-hub-offline", ["task=rte"], ["task=rte", "data_dir="]),
    ("sub-multirun", ["-m", "trainer.weight_decay=0,-0.1"], ["job 1", "trainer.weight_decay", "-0.1"]),
    ("sub-row", ["task=rte", "data_dir={in}/bad_label"], ["RTE/train.tsv", "line 4", "'entailmnet'"]),
]


def fill(argv: list[str], inputs: Path) -> list[str]:
    return [a.replace("{in}", str(inputs)) for a in argv]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(NOISE)]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def subprocesses(inputs, tmp_path_factory):
    """Start every subprocess case at once; each test below waits for its own."""
    started = {}
    for name, argv, _ in SUBPROCESS_CASES:
        root = tmp_path_factory.mktemp(name)
        env = {**os.environ, **environment(root, inputs), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen([sys.executable, "-m", "peftbench", *fill(argv, inputs)], cwd=root, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[name] = root, process
    yield started
    for _, process in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def root(tmp_path, inputs, monkeypatch, subprocesses) -> Path:
    """An empty root as cwd and ``paths.root_dir``; the recipe and Hydra's launcher replaced by a sentinel."""
    folder = tmp_path / "root"
    folder.mkdir()
    for key, value in environment(folder, inputs).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.chdir(folder)

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(cli, "run_recipe", reached)
    monkeypatch.setattr(cli, "run_hydra", reached)
    return folder


class Reached(Exception):  # noqa: N818 - not an error: the command got past every check
    """The command got past every check."""


def main(argv: list[str]) -> int:
    try:
        cli.main(argv)
    except SystemExit as exit:
        return exit.code
    return 0


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_with_one_line(root, inputs, capsys, argv: list[str], expected: list[str]) -> None:
    code = main(fill(argv, inputs))
    lines = error_lines(capsys.readouterr().err)
    assert code == 2, lines
    assert len(lines) == 1, lines
    for part in fill(expected, inputs):
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert files_under(root) == []


def test_a_batch_smaller_than_the_processes_fails_before_launch(root, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")  # as torchrun sets it
    assert main(["trainer.batch_size=2"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "trainer.batch_size=2" in line and "4 processes" in line
    assert files_under(root) == []


@pytest.mark.parametrize("argv", ACCEPTED, ids=[" ".join(a) for a in ACCEPTED])
def test_valid_neighbours_pass_the_checks(root, inputs, capsys, argv: list[str]) -> None:
    with pytest.raises(Reached):
        cli.main(fill(argv, inputs))
    assert error_lines(capsys.readouterr().err) == []


@pytest.mark.parametrize(("name", "expected"), [(c[0], c[2]) for c in SUBPROCESS_CASES],
                         ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_fails_with_one_line_in_a_subprocess(subprocesses, inputs, name: str, expected: list[str]) -> None:
    root, process = subprocesses[name]
    _, stderr = process.communicate(timeout=300)
    lines = error_lines(stderr)
    assert process.returncode == 2, stderr[-2000:]
    assert len(lines) == 1, lines
    assert lines[0].startswith("peftbench: error: ")
    for part in fill(expected, inputs):
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert files_under(root) == []


def test_the_corpus_covers_every_group_and_command() -> None:
    text = " ".join(" ".join(argv) for _, argv, _ in CASES)
    for group in ("method", "model", "task", "budget", "trainer", "logger", "paths", "recipe", "seed", "force",
                  "experiment_name", "data_dir"):
        assert f"{group}" in text, group
    assert {argv[0] for _, argv, _ in CASES} >= {"-m", "plan", "report"}
    assert len(CASES) + len(SUBPROCESS_CASES) >= 40
