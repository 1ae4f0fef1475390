"""The README's copy-paste commands stay true as the code changes.

Every ``mtl-perception`` command in the README's bash blocks is parsed by the real command
line (a renamed or removed flag fails here), the repository files it reads exist, and the
training overrides it passes resolve through the trainer's config validation (an unknown key
or a bad value fails). The ``ros2 launch`` lines name launch files and arguments that exist.
Running them is other tests' job (the demo, training, evaluation and bag tests).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from launch_ast import REPO, LaunchFile
from mtl_perception.cli import build_parser
from mtl_perception.config import apply_overrides, load_config
from mtl_perception_training.train_config import resolve_train_config

README = REPO / "README.md"


def readme_commands() -> list[list[str]]:
    """The README's bash-block lines as argument lists (continuations joined, env prefixes dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if words:
            commands.append(words)
    return commands


def _cli_commands() -> list[list[str]]:
    return [words[1:] for words in readme_commands() if words[0] == "mtl-perception"]


def test_the_readme_has_its_set_up_main_job_and_test_commands():
    commands = [" ".join(words) for words in readme_commands()]
    ci = (REPO / ".ci" / "run").read_text()
    for command in ('pip install -c constraints.txt -e ".[ros,export,train,dev]"', "python -m pytest -q"):
        assert command in ci, f"{command!r} is not what .ci/run runs"
    assert "pip install -c constraints.txt -e .[ros,export,train,dev]" in commands  # shlex drops the quotes
    assert "mtl-perception demo" in commands and "python -m pytest -q" in commands
    assert len(_cli_commands()) >= 10


@pytest.mark.parametrize("argv", _cli_commands(), ids=lambda argv: " ".join(argv[:2]))
def test_readme_command_parses_and_names_existing_files(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README: `mtl-perception {' '.join(argv)}` does not parse (exit {exc.code})")
    config = getattr(args, "config", None)
    if config is not None:
        assert (REPO / config).is_file(), f"README names a config that does not exist: {config}"
    if args.command == "train":
        resolve_train_config(apply_overrides(load_config(REPO / config), args.overrides))
    if args.command == "experiment":
        scale = Path(args.scale)
        assert (REPO / "config" / "experiments" / f"{args.scale}.yaml").is_file() or (REPO / scale).is_file(), \
            f"no scale file {scale}"


def test_readme_launch_lines_name_existing_launch_files_and_arguments():
    launches = [words for words in readme_commands() if words[:2] == ["ros2", "launch"]]
    assert launches
    for words in launches:
        package, launch_file, *arguments = words[2:]
        assert package == "mtl_perception"
        declared = LaunchFile.parse(REPO / "launch" / launch_file).arguments
        for argument in arguments:
            name, _, value = argument.partition(":=")
            assert value and name in declared, f"{launch_file} declares no argument {name!r}"
