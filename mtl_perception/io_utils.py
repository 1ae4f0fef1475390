"""Output files: writable or refused before the work, and written atomically.

``check_output_path`` lets a command refuse an unwritable ``--out``/``--json``/``--onnx`` in one
line *before* minutes of work, instead of failing (with a traceback) at the end. ``atomic_write``
means a crash, Ctrl-C or full disk mid-write never leaves a half-written file behind, and a full
disk says so in one line.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Literal

from mtl_perception.errors import UserError

#: Prefix and suffix of ``atomic_write``'s temporary files (``.NAME.XXXX.tmp`` beside the target).
TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()  # pragma: no cover - a relative path's parents end in ".", which exists


def check_output_path(
    path: str | os.PathLike, option: str, kind: Literal["file", "folder"] = "file", new: bool = False
) -> Path:
    """``path`` as a ``Path`` if a command can create or replace it, else ``UserError`` naming ``option``.

    ``kind="file"``: an existing folder there is refused; ``"folder"``: an existing file is.
    ``new``: anything existing there is refused (outputs that are never overwritten, e.g. bags).
    Writability is probed by creating (and removing) a temporary file in the nearest existing
    folder, so read-only mounts, permissions and a file in the way are all caught, for root too.
    Nothing is left behind; missing parent folders are created later, by the write itself.
    """
    path = Path(path)
    if new and (path.exists() or path.is_symlink()):
        raise UserError(f"{option} {path} exists; it is never overwritten, choose another path")
    if kind == "file" and path.is_dir():
        raise UserError(f"{option} {path}: is a folder, expected a file to write")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file, expected a folder")
    base = _nearest_existing(path if kind == "folder" else path.parent)
    if not base.is_dir():
        raise UserError(f"{option} {path}: {base} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in {base} ({exc.strerror or exc})") from None
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path`` (same folder).

    On any failure the temporary file is removed and ``path`` is untouched; a full disk
    (``ENOSPC``, which torch reports as ``RuntimeError: ... unexpected pos``) is a one-line
    ``UserError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets normal permissions
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        full = _disk_full(exc, path.parent)  # before the partial file is removed and frees space
        if os.path.exists(tmp):
            os.unlink(tmp)
        if full:
            raise UserError(f"no space left writing {path.name} in {path.parent}; {path} is unchanged") from None
        raise


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` means the disk is full: ``ENOSPC`` itself, or a writer (torch's zip
    writer says "unexpected pos") that hid it, with no free space left in ``folder``."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    if not isinstance(exc, RuntimeError):
        return False
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete the temporary files a killed ``atomic_write`` of ``folder/name`` left behind.

    Only the caller knows no write of ``name`` is in progress (e.g. a training run resuming
    its own folder), so this is never done implicitly. Returns what was removed.
    """
    removed = []
    for stale in Path(folder).glob(f".{name}.*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, _write)
