"""Optional dependencies: one clear line naming the pip extra when one is missing.

The runtime (node, pipeline) installs small; what only the offline half or a tool needs lives in
setup.py's extras. A missing one must say which extra to install, not end in an ImportError.
"""
from __future__ import annotations

import importlib.util

from mtl_perception.errors import UserError


def require(module: str, package: str, extra: str, purpose: str) -> None:
    """Raise ``UserError`` unless ``module`` is importable; ``package`` is its pip name."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f'{purpose} needs {package}: pip install "mtl_perception[{extra}]"')
