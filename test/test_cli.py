"""The `mtl-perception` entry point: every sub-command has --help, user mistakes exit 2."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from mtl_perception.cli import main

COMMANDS = sorted(ep.name for ep in entry_points(group="mtl_perception.commands"))
BENCHMARKS = sorted(ep.name for ep in entry_points(group="mtl_perception.benchmarks"))


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "mtl_perception.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", name, "--help"])
    assert exc.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
