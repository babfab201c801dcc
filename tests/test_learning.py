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


# Open findings (README "Methods that do not learn yet"), kept visible: strict, so the test fails the day one of
# them starts to learn and the mark must go. Measured on this check (64 steps, MiniLM, 200 validation sentences):
# prompt 0.525 (chance) at prompt lr 3e-2 and 1e-3, with the prompt before and after [CLS], pooler trainable;
# ptuning_v2 0.600 (binomial p = 0.02): its N(0, 1) prefix values (norm ~19.6) swamp MiniLM's real values (~8.7).
NOT_YET = {"prompt": "prompt tuning stays at chance on MiniLM in 64 steps",
           "ptuning_v2": "P-tuning v2's N(0, 1) prefixes swamp MiniLM's attention in 64 steps"}


def cases() -> list:
    return [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[m])) if m in NOT_YET else m
            for m in methods.available()]


@pytest.mark.parametrize("method", cases())
def test_method_learns_on_real_data(method: str, tmp_path) -> None:
    (row,) = [learning_check.check_method(method, tmp_path, [], short=True)]
    print(learning_check.table([row]))
    assert row["p_above"] < 0.01, learning_check.table([row])
