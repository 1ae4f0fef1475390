"""A child process (the perception node, a relay) whose output is kept for the error message.

``bag eval --live`` and ``bench node`` both start the node in a process of its own, watch that
it stays alive and stop it the way ``ros2 launch`` does (SIGINT, rclpy's clean shutdown, then
harder): one implementation, so both say the same thing when the node dies at start-up.
"""
from __future__ import annotations

import signal
import subprocess
import threading
from collections import deque
from typing import Mapping, Sequence

from mtl_perception.errors import UserError


class ChildProcess:
    """``command`` running with stdout and stderr kept (the last ``keep_lines`` lines)."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, keep_lines: int = 40) -> None:
        self.log: deque[str] = deque(maxlen=keep_lines)
        self.proc = subprocess.Popen(
            list(command), env=None if env is None else dict(env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())

    def output(self) -> str:
        """The last lines the process printed."""
        return "\n".join(self.log) or "(no output)"

    def check_alive(self, what: str) -> None:
        """``UserError`` with the process's last output if it has exited."""
        if self.proc.poll() is not None:
            self._reader.join(timeout=2)
            raise UserError(f"{what} exited with status {self.proc.returncode}; its last output:\n{self.output()}")

    def stop(self) -> None:
        """SIGINT (rclpy's clean shutdown), then terminate, then kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self._reader.join(timeout=2)
