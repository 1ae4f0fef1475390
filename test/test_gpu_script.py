"""``tools/gpu/run.sh``, the prepared GPU run, must still match the command line it calls.

A lent GPU machine is rare and its minutes few: a bench option renamed here must fail here,
not there. Every ``mtl-perception`` call in the script is parsed by the real CLI parser.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mtl_perception.cli import build_parser

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "gpu"


def _cli_calls() -> list[list[str]]:
    text = (TOOLS / "run.sh").read_text().replace("\\\n", " ")
    calls = [shlex.split(m.group(1)) for m in re.finditer(r"^\s*step \d+ \S+ mtl-perception (.+)$", text, re.M)]
    return [[word.replace('"$OUT"', "out").replace("$OUT", "out") for word in call] for call in calls]


def test_the_gpu_run_calls_every_gpu_bench():
    targets = [call[1] for call in _cli_calls() if call[0] == "bench"]
    assert targets == ["inference", "grouping", "node", "cameras", "train"]


@pytest.mark.parametrize("call", _cli_calls(), ids=lambda call: " ".join(call[:2]))
def test_each_call_of_the_gpu_run_parses(call):
    build_parser().parse_args(call)  # SystemExit (a failed test) on an unknown option or value


@pytest.mark.parametrize("script", ["run.sh", "fetch_wheels.sh"])
def test_the_gpu_scripts_are_valid_bash(script):
    subprocess.run(["bash", "-n", str(TOOLS / script)], check=True)
