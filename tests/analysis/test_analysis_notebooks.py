"""The three analysis notebooks run top to bottom on fixture records and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("budget_tables", "sora_curves", "rank_heatmaps")


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(value) for value in output.get("data", {}).values()]
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_fixture_results(name: str, small_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code"), "commit notebooks without outputs"
    monkeypatch.setenv("PEFTBENCH_RESULTS", str(small_results))  # the kernel inherits this environment
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    text = outputs_text(notebook)
    images = sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))
    if name == "budget_tables":
        assert "| LoRA | r8 |" in text and "| AdaLoRA | r8 |" in text
    elif name == "sora_curves":
        assert "2 runs with SoRA stages" in text and images == 1
    else:
        assert "2 heatmaps from 4 runs" in text and images == 2 + 2 * 2
