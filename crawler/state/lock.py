"""One run per output folder (C11): an OS-level lock that dies with its process, so a crashed
run never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import OutputBusyError
from ..output.layout import Layout


class FolderLock:
    """flock(2) on OUT/.crawler/lock, held for the life of the run."""

    def __init__(self, out: Path) -> None:
        self.path = Layout(out).lock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises OutputBusyError at once when another process holds the lock."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise OutputBusyError(
                f"another crawler run{who} is using the output folder {self.path.parent.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
