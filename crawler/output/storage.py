"""Atomic writes under the output folder (C7): a file appears under its final name only when
complete. Temp files live in OUT/.crawler/tmp (layout.py; same filesystem, so the final rename
is atomic) and are cleared when a run starts; nothing partial is ever left in a job folder."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import LocalError
from .layout import Layout


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        # The process's own symbols include libc's; find_library would run ldconfig.
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
        return function
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()

# OS errors that mean "this machine cannot write here", not "this one request is odd".
_LOCAL_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


def local_error(exc: OSError, path: Path | str) -> LocalError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return LocalError(f"cannot write {path}: {reason}")


def replace_file(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write a whole file that readers may be watching (a report, a summary, metrics): a temp
    file in its folder, then a rename, so a reader sees the old file or the new one, never a
    part; readable by everyone (0644). Raises OSError when the folder refuses."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class Storage:
    """Writes result files into ``out`` atomically; one instance per run."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = Layout(out).tmp
        self._counter = itertools.count()
        self._jsonl: dict[str, int] = {}
        # write_bytes runs once per small file: it works on plain strings, since building
        # Path objects there cost about a third of the write (measured on tmpfs).
        self._out_prefix = f"{out}{os.sep}"
        self._temp_prefix = f"{self.tmp}{os.sep}{os.getpid()}-"
        self._made_folders: set[str] = set()

    def prepare(self) -> None:
        """Create the folders and drop temp files an interrupted run left behind."""
        try:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, self.tmp) from exc

    def temp_path(self) -> Path:
        return Path(self._temp_name())

    def _temp_name(self) -> str:
        return f"{self._temp_prefix}{next(self._counter)}.part"

    def _parent(self, final: Path | str) -> None:
        """Make the folder ``final`` goes in, once per run."""
        folder = os.path.dirname(final)
        if folder not in self._made_folders:
            os.makedirs(folder, exist_ok=True)
            self._made_folders.add(folder)

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write ``data`` to OUT/rel atomically; returns its sha256. Blocking: run it in an
        executor. Raises LocalError when the disk or folder refuses."""
        final = self._out_prefix + rel
        temp = self._temp_name()
        try:
            self._parent(final)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if exc.errno in _LOCAL_ERRNOS:
                raise local_error(exc, final) from exc
            raise
        return hashlib.sha256(data).hexdigest()

    def move_in(
        self, rel: str, spilled: Path, known: tuple[int, str] | None = None
    ) -> tuple[int, str]:
        """Rename a body that was streamed to a temp file to OUT/rel; returns its size and
        sha256 (``known`` when they were taken as it streamed, else read back)."""
        final = self.out / rel
        try:
            if known is None:
                with spilled.open("rb") as body:
                    known = spilled.stat().st_size, hashlib.file_digest(body, "sha256").hexdigest()
            self._parent(final)
            os.replace(spilled, final)
        except OSError as exc:
            if exc.errno in _LOCAL_ERRNOS:
                spilled.unlink(missing_ok=True)
                raise local_error(exc, final) from exc
            raise  # a path problem: the caller may try another name with the same body
        return known

    def append_line(self, rel: str, line: bytes) -> None:
        """Append whole lines to OUT/rel with a single write (O_APPEND), so a crash leaves
        whole lines only."""
        fd = self._jsonl.get(rel)
        try:
            if fd is None:
                path = self.out / rel
                self._parent(path)
                fd = self._jsonl[rel] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            written = os.write(fd, line)
            if written != len(line):
                # Take the torn line back so the file keeps whole lines only.
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise local_error(exc, self.out / rel) from exc

    def sync(self) -> None:
        """Flush the output folder's filesystem to disk (syncfs(2) on Linux: that filesystem
        only, where fsync per file would cost a disk round trip per request)."""
        fd = os.open(self.out, os.O_RDONLY)
        try:
            if _syncfs is None or _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self._jsonl.values():
            os.close(fd)
        self._jsonl.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


class WriteBatcher:
    """Small files written in batches: the writes requested while the event loop runs one
    round of callbacks go to the executor as one job, instead of one executor trip (a thread
    hand-off and a wake-up of the loop) per file. Each caller still awaits its own file."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._pending: list[tuple[str, bytes, asyncio.Future[str]]] = []

    async def write(self, rel: str, data: bytes) -> str:
        """Write ``data`` to OUT/rel atomically (Storage.write_bytes); returns its sha256."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._submit)  # after the callbacks already queued in this round
        self._pending.append((rel, data, future))
        return await future

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, self._write_all, batch)
        done.add_done_callback(functools.partial(self._resolve, batch))

    def _write_all(
        self, batch: list[tuple[str, bytes, asyncio.Future[str]]]
    ) -> list[str | BaseException]:
        results: list[str | BaseException] = []
        for rel, data, _ in batch:
            try:
                results.append(self._storage.write_bytes(rel, data))
            except Exception as exc:  # handed to that one caller
                results.append(exc)
        return results

    @staticmethod
    def _resolve(
        batch: list[tuple[str, bytes, asyncio.Future[str]]],
        done: asyncio.Future[list[str | BaseException]],
    ) -> None:
        if done.cancelled():
            outcomes: list[str | BaseException] = [asyncio.CancelledError()] * len(batch)
        elif done.exception() is not None:
            outcomes = [done.exception() or RuntimeError()] * len(batch)
        else:
            outcomes = done.result()
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller was cancelled; the file is written all the same
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
