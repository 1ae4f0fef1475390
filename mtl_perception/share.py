"""Where the package's data files (config/, launch/, package.xml) are, in a checkout or installed.

setup.py installs them as data files under ``<prefix>/share/mtl_perception``: ament's share
folder under ``colcon build``, and the same folder under a plain (non-editable) ``pip install``.
Run from a checkout (editable install, tests) they are the repository's own, which has the same
layout at its top. Code that needs a shipped config asks here instead of assuming a checkout.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mtl_perception.errors import UserError

PACKAGE = "mtl_perception"
_PACKAGE_DIR = Path(__file__).resolve().parent


def share_candidates() -> list[Path]:
    """The folders that may hold the data files, most specific first."""
    # site-packages -> pythonX.Y -> lib -> prefix (venv, colcon's install/<pkg>, /usr, ~/.local).
    # A checkout near the file system's root (/work/repo) has fewer parents than that.
    parents = _PACKAGE_DIR.parents
    installed = [parents[3] / "share" / PACKAGE] if len(parents) > 3 else []
    return [_PACKAGE_DIR.parent, *installed, Path(sys.prefix) / "share" / PACKAGE]


def share_root() -> Path:
    """The first candidate with package.xml in it: a checkout's top, or the installed share folder."""
    for folder in share_candidates():
        if (folder / "package.xml").is_file():
            return folder
    looked = ", ".join(str(p) for p in share_candidates())
    raise UserError(f"the data files of {PACKAGE} (config/, package.xml) are not installed; looked in {looked}")
