"""Run one synthesis in a forked child process and collect its (picklable) result later.

Both voices use this for ``--workers N``: N children synthesize at once while the parent aligns
and writes.  For espeak-ng the fork is also what makes synthesis deterministic (every utterance
starts from the state of a never-used synthesizer, see :func:`training.corpus.espeak.synthesize_isolated`).
POSIX only (``os.fork``).
"""

from __future__ import annotations

import os
import pickle
from typing import Callable, Generic, TypeVar

__all__ = ["ForkedCall", "Ready"]

T = TypeVar("T")


def _read_exactly(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("synthesis child closed its pipe early")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ForkedCall(Generic[T]):
    """``fn()`` running in a forked child; :meth:`result` waits for it and returns its value.

    An exception in the child comes back as ``RuntimeError(f"{what} failed in child process: ...")``.
    """

    def __init__(self, fn: Callable[[], T], what: str = "synthesis"):
        self._what = what
        self._value = None
        self._done = False
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, and leave without running any Python exit machinery
            code = 0
            try:
                os.close(rfd)
                try:
                    payload = (True, fn())
                except BaseException as exc:  # report, never raise past fork
                    payload, code = (False, repr(exc)), 1
                data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
                _write_all(wfd, len(data).to_bytes(8, "little") + data)
            finally:
                os._exit(code)
        os.close(wfd)
        self._pid, self._fd = pid, rfd

    def result(self) -> T:
        if not self._done:
            try:
                size = int.from_bytes(_read_exactly(self._fd, 8), "little")
                ok, payload = pickle.loads(_read_exactly(self._fd, size))
            finally:
                os.close(self._fd)
                os.waitpid(self._pid, 0)
            if not ok:
                raise RuntimeError(f"{self._what} failed in child process: {payload}")
            self._value, self._done = payload, True
        return self._value


class Ready(Generic[T]):
    """An already computed value behind the same ``result()`` as :class:`ForkedCall`."""

    def __init__(self, value: T):
        self._value = value

    def result(self) -> T:
        return self._value
