"""A speed device, not part of the algorithm: helper processes that take a share of a detection.

Why processes and not threads? Two threads of one Python process take turns at the interpreter
lock: NumPy lets go of it inside large loops and matrix multiplies, but every small call and
the Python between calls hold it, and handing it over costs system calls. Two threads
running P-Net on small pyramid levels at once took two to three times as long each as one
alone; two processes, no longer (benchmarks/README.md).

So with several workers the fast runner (`pipeline.fast.runner`) forks helper processes once
and gives each a share of
every stage: its own pyramid levels to resize and scan, its own boxes to crop and score, while
this process does the first share. The image goes to the helpers through memory they share
with this process (written once, never copied); the shares and the results, which are small,
go through pipes.

A helper is a fork of this process at the moment it started: it has the runner (the *owner*),
its session's nets and their weights as they were then. The runner passes a *key*, objects that
are new ones when the weights change (MTCNN's inference copies of its nets,
`pipeline.fast.batch_last.BatchLastCache`; the Cascade-CNN's nets' versions,
`pipeline.fast.versions`), and a different key starts new helpers;
everything else a share needs (thresholds, conventions) comes with the share. A larger image
than the shared memory holds also starts new helpers, and so do a process forked from this one
(it must not talk on its parent's pipes) and an interrupted share (its answer would be out of
step). Starting a helper costs a few milliseconds; each has the memory of its own arrays (on
a 6000 x 4000 photo, about as much as this process).

Helpers are forks (`pipeline.fast.forks`: Linux only, and not from inside a daemonic process such as
a multiprocessing pool's worker); elsewhere `pipeline.fast.parallel.Parallel` uses threads.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import traceback
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from pipeline.fast.forks import fork_context, parent_end, start_forked

MIN_SHARED_BYTES = 16 << 20  # the shared memory's smallest size; it grows by re-starting the helpers

def can_fork() -> bool:
    """Whether this process may start helpers (`pipeline.fast.forks.fork_context`: on Linux, outside a
    daemonic multiprocessing worker)."""
    return fork_context() is not None


@dataclass(frozen=True)
class _InShared:
    """Stands, in a message to a helper, for the array at the start of the shared memory."""

    shape: tuple
    dtype: str


def _serve(connection, owner, shared: mmap.mmap) -> None:
    """A helper's life: receive (fn, args), answer (True, fn(owner, *args)) or (False, (error,
    its traceback)), until the parent's end of the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            fn, args = connection.recv()
        except (EOFError, OSError):
            return
        args = [np.ndarray(a.shape, a.dtype, buffer=shared) if isinstance(a, _InShared) else a for a in args]
        try:
            reply = (True, fn(owner, *args))
        except Exception as error:  # sent back and raised there, with this traceback
            reply = (False, (error, traceback.format_exc()))
        try:
            message = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # a result or an error that does not pickle
            failure = RuntimeError(f"a helper's answer could not be pickled: {error!r}")
            message = pickle.dumps((False, (failure, traceback.format_exc())), pickle.HIGHEST_PROTOCOL)
        try:
            connection.send_bytes(message)
        except OSError:  # the parent closed the pipe (it stopped the helpers, or ended)
            return


def _answer(connection):
    """A helper's answer, (ok, value); None when the helper has ended."""
    try:
        message = connection.recv_bytes()
    except (EOFError, OSError):
        return None
    try:
        return pickle.loads(message)
    except Exception as error:  # e.g. an exception class that cannot be rebuilt here
        return False, (RuntimeError(f"a helper's answer could not be unpickled: {error!r}"), "")


class Helpers:
    """``count`` forked helper processes and the memory they share with this process.

    ``start(owner, key, shared_bytes)`` makes them ready (forking only when needed, see the
    module doc); ``shared_array`` gives an array in the shared memory; ``run(fn, shares)``
    computes [fn(owner, *share) for share in shares], the first share here and share i in
    helper i. fn must be a module-level function (it is sent by name).
    """

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.count = count
        self._processes = []  # (process, this process's end of its pipe)
        self._state = None  # (pid, weak reference to the owner, key) the helpers were started with
        self._memory = None  # the shared mmap
        self._lent = None  # the array shared_array handed out, sent to helpers by reference
        self._pending = False  # a share was sent and its answer not read: the pipes are out of step
        self._finalizer = None  # stops the helpers when this object goes
        self._parent_pid = None  # the process that started them

    def __getstate__(self):
        """Pickled without processes or memory (a copy starts its own)."""
        return {**self.__dict__, "_processes": [], "_state": None, "_memory": None, "_lent": None,
                "_pending": False, "_finalizer": None}

    def _fresh(self, owner, key, shared_bytes: int) -> bool:
        if self._state is None or self._pending or self._memory is None or len(self._memory) < shared_bytes:
            return False
        pid, owner_ref, old_key = self._state
        return (pid == os.getpid() and owner_ref() is owner and len(old_key) == len(key)
                and all(a is b for a, b in zip(old_key, key))
                and all(process.is_alive() for process, _ in self._processes))

    def start(self, owner, key=(), shared_bytes: int = 0) -> None:
        """Helpers that are forks of this process with ``owner`` as it is now (its key:
        objects compared by identity) and shared memory of at least ``shared_bytes``."""
        key = tuple(key)
        if self._fresh(owner, key, shared_bytes):
            return
        self.close()
        context = fork_context()
        if context is None:
            raise OSError("helper processes need fork (Linux), outside a daemonic process")
        size = max(MIN_SHARED_BYTES, 1 << max(0, int(shared_bytes) - 1).bit_length())
        self._memory = mmap.mmap(-1, size)  # anonymous and shared: forks see the same pages
        self._parent_pid = os.getpid()
        for number in range(1, self.count + 1):
            mine, theirs = context.Pipe()
            parent_end(mine)  # closed in every fork, so the helper sees its parent end
            process = context.Process(target=_serve, args=(theirs, owner, self._memory),
                                      name=f"facecascade-helper-{number}", daemon=True)
            start_forked(process)
            theirs.close()
            self._processes.append((process, mine))
        self._state = (os.getpid(), weakref.ref(owner), key)
        self._finalizer = weakref.finalize(self, _stop, list(self._processes), self._parent_pid)

    def shared_array(self, shape, dtype) -> np.ndarray:
        """An array (shape, dtype) at the start of the shared memory (after `start`; it holds
        until the next call). Passed to `run` as an argument, the helpers see it without a
        copy."""
        dtype = np.dtype(dtype)
        if self._memory is None or int(np.prod(shape)) * dtype.itemsize > len(self._memory):
            raise ValueError(f"shared_array{tuple(shape)} of {dtype} does not fit the shared memory: "
                             "call start with a larger shared_bytes first")
        self._lent = np.ndarray(tuple(shape), dtype, buffer=self._memory)
        return self._lent

    def _message(self, fn, share):
        return fn, [_InShared(a.shape, a.dtype.str) if a is self._lent else a for a in share]

    def run(self, fn, owner, shares) -> list:
        """[fn(owner, *share) for share in shares] (at most count + 1 shares): the first here,
        the others in the helpers at the same time. A helper's error is raised here, with its
        traceback as a note. A helper that ended (killed) has its share done here instead,
        with a warning, and new helpers start at the next `start`."""
        shares = list(shares)
        if len(shares) > self.count + 1:
            raise ValueError(f"{len(shares)} shares for {self.count} helpers and this process")
        if not shares:
            return []
        if self._pending or len(self._processes) < len(shares) - 1:
            raise RuntimeError("Helpers.run: the helpers are not ready (not started, or an earlier share's "
                               "answer is still unread); call start first")
        busy = self._processes[: len(shares) - 1]
        self._pending = True
        sent, answers = [], []
        try:
            for (_, connection), share in zip(busy, shares[1:]):
                try:
                    connection.send(self._message(fn, share))
                    sent.append(True)
                except OSError:  # the helper has ended: its share is done here below
                    sent.append(False)
            mine = fn(owner, *shares[0])
        finally:  # read every answer, even after an error here, so the pipes stay in step
            for (_, connection), was_sent in zip(busy, sent):
                answers.append(_answer(connection) if was_sent else None)
            self._pending = False
        results = [mine]
        for (process, _), share, answer in zip(busy, shares[1:], answers):
            if answer is None:
                warnings.warn(f"{process.name} ended unexpectedly (exit code {process.exitcode}); "
                              "its share ran in this process", RuntimeWarning, stacklevel=2)
                self._state = None  # new helpers at the next start
                results.append(fn(owner, *share))
                continue
            ok, value = answer
            if not ok:
                error, text = value
                error.add_note(f"raised in {process.name}:\n{text}")
                raise error
            results.append(value)
        return results

    def close(self) -> None:
        """End the helpers (they exit when their pipe closes) and free the shared memory."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _stop(self._processes, self._parent_pid)
        self._processes, self._state, self._lent, self._pending = [], None, None, False
        self._memory = None  # unmapped when no array points into it any more


def _stop(processes, parent_pid: int) -> None:
    """Close the helpers' pipes, so that they exit, and wait for them. In a process forked from
    their parent only the copies of the pipes are closed: the helpers are not its children."""
    for _, connection in processes:
        connection.close()
    if os.getpid() != parent_pid:
        return
    for process, _ in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
