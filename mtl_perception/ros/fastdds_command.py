"""``mtl-perception fastdds-profile``: the node's Fast DDS profile for the camera driver's shell.

The node gives its own participant a 32 MiB shared-memory segment (``middleware.py``), but a
sample is sent through the segment of the participant that writes it: the camera driver's.
With Fast DDS's default 512 KiB segment a reliable 1024x2048 rgb8 image (6 MiB) waits for
repairs before the node even sees it, and best-effort ones are lost (``mtl-perception bench
node --qos``: the transport rows with the camera as shipped; the node's ``/diagnostics`` shows
both: ``latency_transport``, ``frames_lost_in_transport``). ``eval "$(mtl-perception fastdds-profile)"`` before starting the
driver sets the same profile there, in the variable the installed Fast DDS reads.

Prints ``export NAME=PATH`` lines on stdout, nothing else, so ``eval`` is safe; why nothing was
printed (another RMW, a profile of the user's already set) goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from mtl_perception.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: what to set follows from RMW_IMPLEMENTATION and the installed Fast DDS."""


def exports(env: dict[str, str]) -> list[str]:
    """The ``export`` lines that give a process started from this shell the node's profile."""
    from mtl_perception.errors import UserError
    from mtl_perception.inference.cache import CACHE_ENV, default_cache_dir
    from mtl_perception.ros.middleware import PROFILE_ENVS, configure_fastdds

    configured = dict(env)
    try:
        setup = configure_fastdds(configured)
    except OSError as exc:  # the driver needs a file that outlives this command: no temporary fallback
        raise UserError(
            f"cannot write the profile into {default_cache_dir()} ({exc.strerror or exc}): "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc
    print(f"# {setup.note}", file=sys.stderr)
    if setup.profile is None:
        return []
    return [f"export {name}={shlex.quote(configured[name])}" for name in PROFILE_ENVS.values() if name in configured]


def _run(args: argparse.Namespace) -> int:
    for line in exports(dict(os.environ)):
        print(line)
    return 0


COMMAND = Command(
    help="print the export lines that give a camera driver the node's Fast DDS profile (eval them)",
    add_arguments=_add_arguments,
    run=_run,
    description=__doc__.splitlines()[0],
)
