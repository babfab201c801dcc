"""Every option of every group and every experiment preset composes and validates."""

from __future__ import annotations

import pytest
from support import CONF, compose

from peftbench.config import ConfigError, validate

GROUPS = ["method", "model", "task", "budget", "trainer", "logger", "recipe"]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).rglob("*.yaml"))]
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").rglob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_group_option_validates(group: str, option: str) -> None:
    needs = {("recipe", "sora_sparsity"): ["method=sora"],  # needs a sparsifiable method
             ("method", "qlora"): ["model.quantization=nf4"]}  # needs a 4-bit backbone
    run = validate(compose([*needs.get((group, option), []), f"{group}={option}"]))
    assert getattr(run, "method_name" if group == "method" else group) is not None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_validates(experiment: str) -> None:
    first_line = (CONF / "experiment" / f"{experiment}.yaml").read_text().splitlines()[0]
    assert first_line == "# @package _global_"
    run = validate(compose([f"+experiment={experiment}"]))
    assert run.experiment_name == experiment.removesuffix("_quick") or run.experiment_name == experiment


def test_budget_rank_sets_the_method_rank() -> None:
    assert validate(compose(["method=lora", "budget=r2"])).method.r == 2


def test_run_id_is_deterministic_and_config_sensitive() -> None:
    first = validate(compose(["seed=3"])).run_id
    assert first == validate(compose(["seed=3"])).run_id
    assert first != validate(compose(["seed=4"])).run_id
    assert first != validate(compose(["seed=3", "trainer.lr=3e-3"])).run_id
    assert first == validate(compose(["seed=3", "force=true", "experiment_name=other"])).run_id


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.r=-1"], "method.r must be a positive rank"),
        (["trainer.lr=-1"], "trainer.lr must be positive"),
        (["task.protocol=glue"], "task.protocol: 'glue'; allowed ['adalora', 'sora']"),
        (["+trainer.lrr=1"], "trainer.lrr: unknown key (did you mean 'lr'?)"),
        (["trainer.epochs=two"], "trainer.epochs"),
        (["+method.rank=4"], "method.rank: unknown key"),
        (["logger.name=tensorboard"], "logger.name: 'tensorboard'"),
        (["trainer.malloc_mmap_threshold_mb=64"], "trainer.malloc_mmap_threshold_mb must lie in (0, 32]"),
    ],
)
def test_bad_values_fail_with_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose(overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"])
def test_adalora_preset_matches_table8(task: str) -> None:
    from peftbench.methods.adalora.hyperparameters import GLUE, method_overrides

    run = validate(compose(["+experiment=adalora_glue", f"task={task}"]))
    paper = GLUE[task]
    assert (run.trainer.lr, run.trainer.epochs, run.trainer.batch_size) == (paper.lr, paper.epochs, 32)
    assert run.task.max_length == paper.max_length
    expected = method_overrides(task, "paper")
    assert {key: getattr(run.method, key) for key in expected} == expected
    lora = validate(compose(["+experiment=adalora_glue", f"task={task}", "method=lora"]))
    assert lora.trainer.lr == paper.lr  # baselines share the trainer settings, not AdaLoRA's schedule


def test_command_line_beats_preset_and_paper_values() -> None:
    run = validate(compose(["+experiment=adalora_glue", "task=rte", "trainer.lr=0.1", "method.t_i=7"]))
    assert (run.trainer.lr, run.method.t_i) == (0.1, 7)


# A comparison preset compares methods: they must train under the same trainer and task settings, whatever
# per-method hyperparameter files the preset pulls in (those may set only method.*).
COMPARISONS = [e for e in EXPERIMENTS if "sparsity" not in e]


@pytest.mark.parametrize("experiment", COMPARISONS)
def test_comparison_presets_give_every_method_the_same_trainer(experiment: str) -> None:
    """Every method x every task of the preset composes to LoRA's trainer and task settings. Only a method with a
    per-task hyperparameter file can differ from the method group's own file, which is not global (next tests),
    so those are the ones composed beside LoRA; the cheap check below covers the rest."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from peftbench import methods

    task_names = sorted(path.stem for path in (CONF / "task").glob("*.yaml"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for task in task_names:
            with_files = [m for m in methods.available() if list((CONF / "method_hparams").glob(f"*/{m}_{task}.yaml"))]
            seen = {}
            for method in ["lora", *with_files]:
                cfg = hydra_compose("config", overrides=[f"+experiment={experiment}", f"task={task}",
                                                         f"method={method}"])
                seen[method] = OmegaConf.to_container(cfg.trainer), OmegaConf.to_container(cfg.task)
            for method, settings in seen.items():
                assert settings == seen["lora"], f"{experiment} task={task}: {method} trains differently from lora"


def test_method_group_files_set_only_their_own_group() -> None:
    for path in sorted((CONF / "method").glob("*.yaml")):
        assert "@package _global_" not in path.read_text(), f"{path.relative_to(CONF)} writes outside method.*"


def test_method_hyperparameter_files_set_only_method_keys() -> None:
    import yaml

    for path in sorted((CONF / "method_hparams").rglob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text()) or {})
        assert keys <= {"method"}, f"{path.relative_to(CONF)} sets {sorted(keys - {'method'})}"


@pytest.mark.parametrize(("overrides", "grouped"), [
    ([], True),  # the quickstart: length-grouped batches, less padding
    (["+experiment=sora_glue_quick"], True),
    (["+experiment=sora_glue"], False),  # a paper preset: the papers' uniform shuffle, their data order
    (["+experiment=adalora_glue", "task=rte"], False),
    (["+experiment=adalora_squad"], False),
    (["+experiment=sora_glue", "trainer.group_by_length=true"], True),
])
def test_paper_presets_keep_the_papers_data_order(overrides: list[str], grouped: bool) -> None:
    assert validate(compose(overrides)).trainer.group_by_length is grouped
