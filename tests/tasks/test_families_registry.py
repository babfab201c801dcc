"""The family registry finds every family even when one family module was imported first."""

import subprocess
import sys


def test_direct_import_of_one_family_does_not_hide_the_others() -> None:
    code = ("import peftbench.tasks.seq2seq\nfrom peftbench import tasks\nprint(','.join(tasks.available()))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found.split(",") == ["classification", "extractive_qa", "seq2seq"]
