"""A pure function run in a forked child, on another core, its result taken back through a pipe.

Why: the backends are CPU-bound Python, and one process uses one core. A forked child sees the
parent's immutable model (and its cached analyses) copy-on-write, so nothing is sent to it; only
its result comes back, pickled. What runs there must be a pure function of what the parent
already holds: the result is then the same whether it ran in the child or in-process.

When the child cannot be started, or dies without an answer (killed, out of memory), the
function runs in-process instead (as it does when other threads run: a forked child could
inherit a lock one of them holds, the import lock say, and wait for it forever), so a
compile never fails for want of a second process. An exception raised in the child is
raised again in the parent. `tests/test_forked.py`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Forked(Generic[T]):
    """`fn(*args)` running in a child; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, fn: Callable[..., T], *args: object, fork: bool = True):
        self._fn, self._args = fn, args
        self._pid = 0
        self._read = -1
        if fork and hasattr(os, "fork") and threading.active_count() == 1:
            self._start()

    def _start(self) -> None:
        try:
            read, write = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:  # no memory or no process left: run in-process
            os.close(read)
            os.close(write)
            return
        if pid == 0:  # the child: never returns
            os.close(read)
            self._child(write)
        os.close(write)
        self._pid, self._read = pid, read

    def _child(self, write: int) -> None:
        code = 0
        try:
            try:
                payload = pickle.dumps((True, self._fn(*self._args)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as err:  # noqa: BLE001 - every failure goes to the parent, as it is
                try:
                    payload = pickle.dumps((False, err), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # noqa: BLE001 - an exception that will not pickle
                    payload = pickle.dumps((False, RuntimeError(f"{type(err).__name__}: {err}")))
            with open(write, "wb", closefd=True) as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001 - the parent gone (EPIPE) or interrupted: it runs fn itself
            code = 1
        finally:
            os._exit(code)  # no atexit handlers, no flushing the parent's buffers twice

    def result(self) -> T:
        """The function's value; its exception raised here. In-process when there is no child."""
        if not self._pid:
            return self._fn(*self._args)
        try:
            with open(self._read, "rb", closefd=True) as pipe:
                self._read = -1
                payload = pipe.read()
        except BaseException:  # interrupted while waiting: stop the child rather than wait for it
            self.cancel()
            raise
        self._reap()
        if not payload:  # died before answering
            return self._fn(*self._args)
        try:
            ok, value = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - e.g. an exception class that will not unpickle: ask again here
            return self._fn(*self._args)
        if not ok:
            raise value
        return value

    def _reap(self) -> None:
        pid, self._pid = self._pid, 0
        if self._read >= 0:
            os.close(self._read)
            self._read = -1
        if pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def cancel(self) -> None:
        """Stop the child if it still runs; safe to call twice, and after `result()`."""
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
        self._reap()
