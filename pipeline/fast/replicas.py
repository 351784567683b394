"""Speed machinery, not part of any algorithm: a training step on two cores as two half-batches.

`layers.batch_chunks` shares each *layer's* work over threads: one hand-off and one wait per
layer and pass. Data parallelism, as on several GPUs, needs one hand-off per pass instead: each
core runs a *replica* of the net over its own part of the batch, through all the layers.

* A replica has the net's parameter *values* (read from shared memory before every forward
  pass, so each optimizer step on the net reaches it) and its own gradients and caches.
* ``forward(x)`` splits the batch x (N, ...) into `PARTS` consecutive parts, runs them at once
  and returns the outputs of the whole batch, in order, as ``net.forward(x)`` would.
* The caller computes the loss on the *whole* batch, exactly as without replicas (online hard
  example mining picks the hardest samples of the whole batch, not of each part).
* ``backward(dout)`` gives each replica its part of dout and stores in the net's parameters
  the sum of the replicas' gradients: the gradient of a sum over the batch is the sum of the
  parts' gradients.

Why processes and not threads: the replicas first ran on two threads of this process, which
gained R-Net little and P-Net nothing: a P-Net layer on half a batch is a few dozen
microseconds of NumPy calls, and the two threads spent their time handing Python's global
interpreter lock to each other. Two processes each have their own, and take a step in a quarter
to a third less time than the net alone (`benchmarks/bench_train.py`, figures in benchmarks/README.md).

The first replica runs in this process, the others in worker processes: forks of this one (on
Linux), so the net is not pickled and the user's script is not run again; each stays on a core
of its own. Elsewhere all parts run here, one after the other. Per step a worker reads its part
of the batch, the parameter values and writes its gradients through shared memory, and gets
its part of the output gradients through a pipe.

The parts are always `PARTS` (two), whatever the number of cores, and each is computed the same
way, in a worker or here: a run's numbers are the same on any machine. They equal the plain
net's up to float32 rounding (the batch sums are split in two and added), except for dropout,
where each replica draws its own masks from generators spawned from the net's.
"""

from __future__ import annotations

import copy
import os
import signal
import traceback
from contextlib import suppress

import numpy as np

from layers import batch_chunks
from pipeline.fast.forks import fork_context, parent_end, start_forked
from layers.modules import _NO_FORWARD_YET, Module, Parameter, dropout_layers

PARTS = 2  # replicas per step, on any machine, so that a run's numbers do not depend on the cores


def replicate(module: Module, dropout_rngs=None) -> Module:
    """A copy of ``module`` whose parameters share their values (the same arrays) with the
    original's, with fresh gradients and no cache. dropout_rngs: one generator per Dropout
    layer (in the order of the module tree), for the copy's own masks (default: the original's
    generators, shared). The copy's layers are its own: every module reaches its children
    through ``children`` (the nets' ``trunk``, ``body``, ``branch`` are properties reading it)."""
    clone = _copy_tree(module)
    if dropout_rngs is not None:
        for layer, rng in zip(dropout_layers(clone), dropout_rngs, strict=True):
            layer.rng = rng
    return clone


def _copy_tree(module: Module) -> Module:
    clone = copy.copy(module)  # every setting (stride, mode, input_grad, ...) as it is now
    clone.params = {}
    for name, param in module.params.items():
        shared = Parameter.__new__(Parameter)
        shared.value, shared.grad, shared.decay = param.value, np.zeros_like(param.value), param.decay
        clone.params[name] = shared
    clone.children = {name: _copy_tree(child) for name, child in module.children.items()}
    clone._cache = _NO_FORWARD_YET
    return clone


def _split(n: int, parts: int) -> list[slice]:
    """Consecutive slices of range(n), as equal as possible, none empty."""
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def _take(tree, part: slice):
    """The ``part`` rows of an output or gradient: an array (N, ...), a dict of them, or None."""
    if isinstance(tree, dict):
        return {name: _take(value, part) for name, value in tree.items()}
    return None if tree is None else tree[part]


def _join(trees: list):
    """The parts' outputs (arrays (n_i, ...) or dicts of them) concatenated along the batch."""
    if isinstance(trees[0], dict):
        return {name: np.concatenate([tree[name] for tree in trees]) for name in trees[0]}
    return np.concatenate(trees)


def _flat_views(buffer: np.ndarray, arrays) -> list[np.ndarray]:
    """Consecutive pieces of a flat buffer, shaped like ``arrays``."""
    views, start = [], 0
    for a in arrays:
        views.append(buffer[start : start + a.size].reshape(a.shape))
        start += a.size
    return views


class _Replica:
    """One part's replica: the net, its parameters reading the shared values, its summed
    parameters' gradients written to its own shared buffer. Runs in a worker or in-process."""

    def __init__(self, net: Module, summed: list[int], values, grads):
        self.net = net
        params = net.parameters()
        for p, view in zip(params, _flat_views(values, [p.value for p in params])):
            p.value = view
        self.summed = [params[i] for i in summed]
        self.grads = _flat_views(grads, [p.value for p in self.summed])

    def forward(self, x):
        return self.net.forward(x)

    def backward(self, dout) -> None:
        self.net.backward(dout)
        for p, out in zip(self.summed, self.grads):
            out[...] = p.grad


def _worker(conn, replica_net, summed, values, grads, batch, dtype, cpu) -> None:
    """A worker process: serve forward and backward requests for one replica until "stop".
    values, grads, batch: shared buffers (parameter values, this replica's gradients, the batch);
    cpu: the core to stay on (None: any)."""
    from threadpoolctl import threadpool_limits

    if cpu is not None:  # one core each, so that the two never queue for the same one
        os.sched_setaffinity(0, {cpu})

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle; it stops us
    threadpool_limits(1)  # one core each: the replicas are the parallelism
    batch_chunks.forget_threads()  # the parent's pool threads do not exist in this fork
    batch_chunks.set_threads(1)
    replica = _Replica(replica_net, summed, np.frombuffer(values, dtype), np.frombuffer(grads, dtype))
    batch = np.frombuffer(batch, np.ctypeslib.as_array(batch).dtype)
    while True:
        try:
            request, data = conn.recv()
        except EOFError:  # the trainer has gone
            return
        if request == "stop":
            return
        try:
            if request == "forward shared":  # data: (the batch's shape, this replica's part)
                shape, part = data
                answer = replica.forward(batch[: int(np.prod(shape))].reshape(shape)[part])
            else:
                answer = getattr(replica, request)(data)
            conn.send(("ok", answer))
        except Exception as error:  # sent back, raised again in the trainer with this traceback
            conn.send(("error", (repr(error), traceback.format_exc())))


class Replicas:
    """`PARTS` replicas of ``net`` that run the parts of each batch at once: the first here,
    the others in worker processes on Linux when `layers.batch_chunks.get_threads` allows two
    threads (the training loop's `slices_not_blas` does on two cores); otherwise all here, one
    after the other (with the same numbers).

        with Replicas(net, params=trainable) as model:
            outputs = model.forward(x)               # as net.forward(x)
            loss, douts = loss_fn(outputs, labels)   # on the whole batch
            model.backward(douts)                    # the net's param.grad, as net.backward(douts)
            optimizer.step()                         # on the net's parameters

    ``params``: the parameters whose gradient to store (default: all; a trainer passes the
    trainable ones: a frozen branch's gradients are not summed). Make the replicas after
    setting the net's modes (train/eval, `without_input_gradient`): they copy them. Use as a
    context manager, or call ``close``, to stop the workers.
    """

    def __init__(self, net: Module, count: int = PARTS, params=None):
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.net = net
        self.params = net.parameters()
        wanted = {id(p) for p in (params if params is not None else self.params)}
        summed = [i for i, p in enumerate(self.params) if id(p) in wanted]
        self.targets = [self.params[i] for i in summed]
        dtype = self.params[0].value.dtype if self.params else np.dtype(np.float32)
        dropout_rngs = [layer.rng.spawn(count) for layer in dropout_layers(net)]
        copies = [replicate(net, [rngs[i] for rngs in dropout_rngs]) for i in range(count)]  # the modes as now
        sizes = (sum(p.value.size for p in self.params), sum(p.value.size for p in self.targets))
        self._context = fork_context() if count > 1 and batch_chunks.get_threads() > 1 else None
        if self._context is not None:  # shared memory, for the workers
            raw = lambda size: self._context.RawArray(np.ctypeslib.as_ctypes_type(dtype), max(1, size))  # noqa: E731
            self._values_raw, self._grads_raw = raw(sizes[0]), [raw(sizes[1]) for _ in range(count)]
            self._values = np.frombuffer(self._values_raw, dtype)
            self._grads = [np.frombuffer(g, dtype) for g in self._grads_raw]
        else:
            self._values = np.zeros(sizes[0], dtype)
            self._grads = [np.zeros(sizes[1], dtype) for _ in range(count)]
        self._value_views = _flat_views(self._values, [p.value for p in self.params])
        here = count if self._context is None else 1  # replicas computed in this process
        self._local = [_Replica(c, summed, self._values, g) for c, g in zip(copies[:here], self._grads)]
        self._unstarted = copies[here:]  # the workers start with the first batch (`_start_workers`)
        self._summed, self._dtype = summed, dtype
        self._workers, self._batch, self._parts = [], None, []

    def _start_workers(self, x: np.ndarray) -> None:
        """Fork the workers, with a shared buffer the size of the batch x: this process copies
        each batch there once, and each worker reads its part in place (through a pipe it would
        be pickled and copied twice more)."""
        self._batch_raw = self._context.RawArray(np.ctypeslib.as_ctypes_type(x.dtype), max(1, x.size))
        self._batch = np.frombuffer(self._batch_raw, x.dtype)
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        first = len(self._local)
        for i, replica_net in enumerate(self._unstarted, start=first):
            mine, theirs = self._context.Pipe()
            parent_end(mine)  # closed in every fork: the worker sees EOF when the trainer ends, however
            process = self._context.Process(
                target=_worker, daemon=True, name=f"replica-{i}",
                args=(theirs, replica_net, self._summed, self._values_raw, self._grads_raw[i], self._batch_raw,
                      self._dtype, cpus[i % len(cpus)] if len(cpus) > 1 else None))
            start_forked(process)
            theirs.close()
            self._workers.append((process, mine))
        self._unstarted = []

    def _ask(self, request: str, here: list, worker_request: str, there: list) -> list:
        """Run ``request`` on the local replicas with the parts ``here`` and, at the same time,
        ``worker_request`` on the workers with the parts ``there``; the replies, in part order."""
        for (_, conn), part in zip(self._workers, there):
            conn.send((worker_request, part))
        # as in a worker, on one core: a part gives the same numbers here and there, and the
        # worker keeps its core
        try:
            with batch_chunks.serial():
                replies = [getattr(replica, request)(part) for replica, part in zip(self._local, here)]
        except BaseException:
            # the workers' replies must still be read, or the next request would read them;
            # the error to report is this one (a worker's, if any, is most likely the same)
            with suppress(RuntimeError):
                self._replies(worker_request, len(there))
            raise
        return replies + self._replies(worker_request, len(there))

    def _replies(self, request: str, count: int) -> list:
        """The answers of the first ``count`` workers to ``request``; raises the first failure."""
        answers, failure = [], None
        for i, (process, conn) in enumerate(self._workers[:count], start=len(self._local)):
            try:
                status, answer = conn.recv()
            except EOFError:
                status, answer = "died", None
            if status == "ok":
                answers.append(answer)
            elif failure is None:
                failure = (f"replica {i} (process {process.pid}) died during {request}" if status == "died"
                           else f"replica {i} failed in {request}: {answer[0]}\n{answer[1]}")
        if failure is not None:
            raise RuntimeError(failure)
        return answers

    def forward(self, x: np.ndarray):
        """x: (N, ...) a batch. Returns what ``net.forward(x)`` returns, for the whole batch."""
        for view, p in zip(self._value_views, self.params):
            view[...] = p.value  # the values after the last optimizer step
        self._parts = _split(len(x), len(self._grads))
        here, there = self._parts[: len(self._local)], self._parts[len(self._local) :]
        if self._unstarted and there:
            self._start_workers(x)
        if there and x.dtype == self._batch.dtype and x.size <= self._batch.size:
            self._batch[: x.size].reshape(x.shape)[...] = x
            replies = self._ask("forward", [x[p] for p in here], "forward shared", [(x.shape, p) for p in there])
        else:
            replies = self._ask("forward", [x[p] for p in here], "forward", [x[p] for p in there])
        return _join(replies)

    def backward(self, dout) -> None:
        """dout: the gradient of the loss w.r.t. the last forward's outputs (as for
        ``net.backward``). Stores in each summed parameter of the net the sum of the replicas'
        gradients. Returns None: the input's gradient is not gathered (training needs none)."""
        if not self._parts:
            raise RuntimeError("Replicas.backward called before forward")
        parts = [_take(dout, part) for part in self._parts]
        self._ask("backward", parts[: len(self._local)], "backward", parts[len(self._local) :])
        total = self._grads[0].copy()
        for grads in self._grads[1 : len(self._parts)]:
            total += grads
        for p, grad in zip(self.targets, _flat_views(total, [p.value for p in self.targets])):
            p.grad = grad

    def close(self) -> None:
        """Stop the worker processes."""
        for process, conn in self._workers:
            try:
                conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
        for process, conn in self._workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
            conn.close()
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
