"""Check the node's ``--ros-args`` before rcl parses them, so a typo costs one clear line.

rcl reports a bad argument as ``RCLError: failed to initialize rcl: Couldn't parse ...
Error: Expected lexeme type (22) not found, search ended at index 10, at .../lexer_lookahead.c``
(and ``rclpy.init`` raises it as a traceback): accurate, but not what a user reads. The
cases a user makes (a params file that is missing or not YAML, ``-r image`` without a
target, ``-p name`` without a value, a flag that does not exist) are caught here with a line
that names the argument; anything rcl still refuses is turned into one line by ``main``.
Params files are read with ``yaml.safe_load``: no YAML tag can construct an object.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from mtl_perception.errors import UserError

#: ROS arguments that take a value, and what the value is.
_WITH_VALUE = {
    "-r": "remap", "--remap": "remap", "-p": "param", "--param": "param",
    "--params-file": "file", "-e": "value", "--enclave": "value", "--log-level": "value",
    "--log-config-file": "value", "--log-file-name": "value",
}
#: ROS arguments that stand alone.
_FLAGS = {
    "--enable-rosout-logs", "--disable-rosout-logs", "--enable-stdout-logs", "--disable-stdout-logs",
    "--enable-external-lib-logs", "--disable-external-lib-logs",
}


def ros_arguments(argv: list[str]) -> list[str]:
    """The arguments inside ``--ros-args`` sections (up to ``--`` or the next section)."""
    inside, out = False, []
    for arg in argv[1:]:
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside:
            out.append(arg)
    return out


def check_ros_arguments(argv: list[str]) -> None:
    """``UserError`` naming the first ``--ros-args`` argument rcl would refuse."""
    args = ros_arguments(argv)
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in _FLAGS:
            i += 1
            continue
        kind = _WITH_VALUE.get(flag)
        if kind is None:
            raise UserError(f"unknown ROS argument {flag!r} (see `ros2 run --help`; node parameters go as -p name:=value)")
        value = args[i + 1] if i + 1 < len(args) else ""
        if not value or value.startswith("-"):
            raise UserError(f"ROS argument {flag} needs a value")
        if kind in ("remap", "param") and (":=" not in value or value.startswith(":=")):
            example = "image:=/camera/image_raw" if kind == "remap" else "model_path:=/path/model.onnx"
            raise UserError(f"{flag} {value!r} needs the form name:=value, e.g. {flag} {example}")
        if kind == "file":
            check_params_file(Path(value))
        i += 2


def check_params_file(path: Path) -> None:
    """``UserError`` unless ``path`` is a readable YAML file of ``node: {ros__parameters: ...}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"params file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read params file {path}: {exc}") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"params file {path} is not valid YAML{line}: {problem}") from None
    if not _has_parameter_sections(content):
        raise UserError(f"params file {path} must map node names to 'ros__parameters:' sections")


def _has_parameter_sections(content: object) -> bool:
    """Every branch of ``content`` ends in a ``ros__parameters`` mapping (namespaces may nest)."""
    if not isinstance(content, dict) or not content:
        return False
    if "ros__parameters" in content:
        return isinstance(content["ros__parameters"], dict)
    return all(_has_parameter_sections(value) for value in content.values())


def rcl_reason(exc: Exception) -> str:
    """One line from what ``rclpy.init`` raised (``RCLError``, ``UnknownROSArgsError``).

    rcl's message ends in a chain of C source locations (``, at /project/src/...``); the
    reason is what comes before them.
    """
    if type(exc).__name__ == "UnknownROSArgsError":
        return f"unknown ROS argument(s) {exc}"
    text = " ".join(str(exc).split())
    return text.split(", at /")[0]
