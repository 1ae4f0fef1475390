"""The shape of one ``mtl-perception`` sub-command.

Each sub-command lives next to the code it drives and is registered under the
``mtl_perception.commands`` entry-point group in setup.py; ``cli.py`` discovers them, so the
runtime package never has to import ``mtl_perception_training``.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Command:
    """A sub-command: its one-line help, how it declares arguments, and what it runs.

    ``run`` returns the process exit status. It raises ``UserError`` for user mistakes.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
