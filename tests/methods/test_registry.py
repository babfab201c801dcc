"""The method registry: configs and capabilities without torch, method classes on first use, capabilities in
one place (the register call)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT

from peftbench import methods


def test_registry_configs_and_capabilities_import_without_torch() -> None:
    code = ("import sys; from peftbench import config, methods; "
            "[(methods.get(n).config(), methods.get(n).capabilities) for n in methods.available()]; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", methods.available())
def test_method_class_carries_its_declared_capabilities(name: str) -> None:
    entry = methods.get(name)
    assert entry.method.name == name
    for key in methods.CAPABILITIES:
        assert getattr(entry.method, key) == getattr(entry.capabilities, key), key


def test_a_registered_class_cannot_declare_a_capability_itself(monkeypatch) -> None:
    monkeypatch.setitem(methods._REGISTRY, "probe", methods.get("lora"))
    with pytest.raises(TypeError, match="declare capabilities in register"):
        type("Probe", (methods.Method,), {"name": "probe", "knob": "r", "apply": lambda self, model: model})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "peftbench.methods.lora.method.LoRAMethod"}, "package.module:Class"),
    ({"method": "peftbench.methods.lora.method:LoRAMethod", "knobs": "r"}, "unknown capabilities"),
    ({"method": "peftbench.methods.lora.method:LoRAMethod", "budget_binds": "final"}, "budget_binds"),
])
def test_register_rejects_bad_declarations(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        methods.register("probe", config=object, **kwargs)
    assert "probe" not in methods.available()
