"""Iterate a DataLoader so that a bad sample ends the job at once, in one line.

Two things go wrong with worker processes when a sample raises:

- torch re-raises a worker's exception in the main process as the same type built from a
  message that holds the whole worker traceback ("Caught DatasetError in DataLoader worker
  process 0. Original Traceback ..."), so a ``UserError`` would print ~30 lines;
- the exception's traceback keeps the loader's iterator alive, so its workers are never told
  to stop; at exit multiprocessing sends them SIGTERM and waits for them, and the trainer's
  workers ignore SIGTERM (the main process handles it), so the process hangs forever.

:func:`loader_batches` stops the workers whenever iteration ends (done, break or exception)
and gives a worker's ``UserError`` back as the one line it was raised with.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, TypeVar

from mtl_perception.errors import UserError

T = TypeVar("T")
_WORKER_PREFIX = "Caught "
_ORIGINAL_TRACEBACK = "Original Traceback"


def original_message(exc: UserError) -> str:
    """The message ``exc`` was raised with in a DataLoader worker (``str(exc)`` if not from one).

    A worker's traceback ends with ``module.Type: message``; that last line is the original.
    """
    text = str(exc)
    if not (text.startswith(_WORKER_PREFIX) and _ORIGINAL_TRACEBACK in text):
        return text
    cls = type(exc)
    for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        position = text.rfind("\n" + name)
        if position >= 0:
            return text[position + 1 + len(name):].strip()
    return text.strip().splitlines()[-1]


@contextlib.contextmanager
def loader_batches(loader: Iterable[T]) -> Iterator[Iterator[T]]:
    """``with loader_batches(loader) as batches: for batch in batches: ...`` (see module docstring)."""
    iterator = iter(loader)
    try:
        yield iterator
    except UserError as exc:
        message = original_message(exc)
        if message == str(exc):
            raise
        raise type(exc)(message) from None
    finally:
        # The multiprocessing iterator's own clean-up (what its __del__ calls); idempotent, and
        # absent from single-process iterators, which have nothing to stop.
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
