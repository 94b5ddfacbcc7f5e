"""``make demo``'s stages: a long one shows that it is moving, a failing one ends the demo naming its log."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ganad_plugin.demo import run_stage

STAGE = ("import logging, time\n"
         "logging.basicConfig(format='%(asctime)s - %(name)s - %(levelname)s - %(message)s', level=logging.INFO)\n"
         "logging.getLogger('fit').info('defect head 1 of 2: training')\n"
         "time.sleep(1.0)\n")


def test_a_long_stage_prints_its_time_and_last_step_while_it_runs(tmp_path: Path, capsys) -> None:
    took = run_stage("train", [sys.executable, "-c", STAGE], tmp_path / "train.log", heartbeat_s=0.4)
    printed = capsys.readouterr().out
    assert f"(its output: {tmp_path / 'train.log'})" in printed
    beats = [line for line in printed.splitlines() if line.endswith(" s  defect head 1 of 2: training")]
    assert beats, printed
    assert took >= 1.0


def test_a_failing_stage_ends_the_demo_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "export.log"
    with pytest.raises(SystemExit, match=re.escape(f"export failed (exit 3); full log in {log}")):
        run_stage("export", [sys.executable, "-c", "print('no IR'); raise SystemExit(3)"], log, heartbeat_s=5)
    assert "no IR" in log.read_text()
