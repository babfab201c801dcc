"""The family registry finds every family even when one family module was imported first."""

import subprocess
import sys


def test_direct_import_of_one_family_does_not_hide_the_others() -> None:
    code = ("import peftbench.tasks.seq2seq\nfrom peftbench import tasks\nprint(','.join(tasks.available()))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found.split(",") == ["classification", "extractive_qa", "seq2seq"]


def test_a_family_is_found_without_importing_the_others() -> None:
    code = ("import sys\nfrom peftbench import tasks\nprint(tasks.get('classification').__name__, "
            "'peftbench.tasks.seq2seq' in sys.modules, 'rouge_score' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert found == ["Classification", "False", "False"]
