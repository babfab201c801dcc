"""Every registered method learns on real data: the shortened learning check (scripts/learning_check.py --short:
real MiniLM, 512 real Rotten Tomatoes sentences, 64 steps) must leave each method's final validation accuracy
above the majority-class rate by a one-sided binomial test (p < 0.01). A new method enters by registering."""

from __future__ import annotations

import sys

import pytest
from support import ROOT

from peftbench import methods

sys.path.insert(0, str(ROOT / "scripts"))
import learning_check  # noqa: E402

pytestmark = pytest.mark.slow  # real MiniLM runs; the offline assets come with scripts/setup.sh


@pytest.mark.parametrize("method", methods.available())
def test_method_learns_on_real_data(method: str, tmp_path) -> None:
    (row,) = [learning_check.check_method(method, tmp_path, [], short=True)]
    print(learning_check.table([row]))
    assert row["p_above"] < 0.01, learning_check.table([row])
