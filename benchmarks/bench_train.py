"""How many samples per second does one training step process? Run by hand:

    python benchmarks/bench_train.py                   # ours only (about a minute on 2 cores)
    python benchmarks/bench_train.py --profile         # plus where the time of a step goes
    path/to/venv-with-torch/bin/python benchmarks/bench_train.py  # plus torch, when it is importable

A training step is what a training loop does per batch: forward pass, losses, backward pass and
an SGD update (momentum 0.9, weight decay 5e-4), in float32 at batch 256 and 128, on 2 threads
(``--threads``), BLAS on one thread (``slices_not_blas``), freed memory kept for the next step
(``pipeline.fast.memory.reuse_freed_memory``). ``ours`` runs it as the training loop
does: two replicas of the net (``pipeline.fast.replicas``), each through its half of the batch, one in
this process and one in a worker process, a core each; the losses on the whole batch. ``1 net`` runs the net itself, whose layers share out
their own work over the threads (``layers.batch_chunks``). The learning rate is
tiny (1e-7) so that the repeated steps on one batch leave the weights, and so the work, as they
are: a larger one lets the random-target losses diverge to
inf/NaN within a few dozen steps. The update's arithmetic is the same for any lr.
It asserts nothing.

The nets
--------
* MTCNN's P-Net (12x12 input), R-Net (24x24) and O-Net (48x48) from ``nets.mtcnn``, with their
  losses: softmax cross-entropy on "face" plus the euclidean loss on "box" (plus "landmarks" on
  O-Net). P-Net's heads are 1x1 maps on a 12x12 input, flattened to (N, 2) and (N, 4).
* Three stacks shaped like Cascade-CNN's 12-, 24- and 48-net (Li et al. 2015), built from
  ``layers.modules``: conv, max pool 3x3/2 in floor mode, ReLU, fully connected, with the
  softmax cross-entropy loss on 2 classes.

How to read the numbers
-----------------------
* ``ours/s``: samples per second = batch / median step time. Every time is the *median* of
  several repeats. ``spread`` is (max - min) / median of the repeats: how noisy the machine was.
  Our step and torch's step run in *separate processes*, one after the other. Run alternately in
  one process, each slowed the other: after a call, OpenBLAS's and OpenMP's worker threads
  keep spinning on the cores for a while, and the other library's threads then wait for a
  core. Torch's R-Net step took 112 ms that way and 60 ms alone (our earlier ratios were
  measured that way and flattered us).
* ``GMAC/s``: multiply-adds of the convs and fully connected layers per second. A training step
  is counted as 3x the forward's multiply-adds (forward, dx and dw), as is usual.
* ``mm GMAC/s``: a plain float32 ``np.matmul`` of the largest forward GEMM of the net
  (F x C*KH*KW times C*KH*KW x N*OH*OW), what BLAS does on that shape on this machine.
* ``torch/s`` and ``ours/torch``: the same layer shapes in torch on the CPU
  (``torch.set_num_threads``), same losses and optimizer; above 1 we are faster.
* ``--profile`` times each layer's forward and backward inside a step (the sum is a little
  above the step time: the timer calls cost something).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layers import (SGD, Conv2D, Linear, MaxPool2D, ReLU, Sequential, euclidean_loss,  # noqa: E402
                    softmax_cross_entropy)
from layers.batch_chunks import slices_not_blas  # noqa: E402
from pipeline.fast.memory import reuse_freed_memory  # noqa: E402
from layers.modules import without_input_gradient  # noqa: E402
from pipeline.fast.replicas import Replicas  # noqa: E402
from layers.shapes import conv_output_size  # noqa: E402
from nets import ONet, PNet, RNet  # noqa: E402

DTYPE = np.float32
LR, MOMENTUM, WEIGHT_DECAY = 1e-7, 0.9, 5e-4  # tiny lr: repeated steps on one batch leave the weights (and the work) as they are


# ------------------------------------------------------------------------ the nets


def cascade_12net(rng):
    """12-net: 3x12x12 -> conv3x3 16 -> 16x10x10 -> pool 3/2 -> 16x4x4 -> relu -> fc 16 -> relu -> fc 2."""
    return Sequential([("conv1", Conv2D(3, 16, 3, rng=rng)), ("pool1", MaxPool2D(3, 2, ceil_mode=False)),
                       ("relu1", ReLU()), ("fc2", Linear(16 * 4 * 4, 16, rng=rng)), ("relu2", ReLU()),
                       ("face", Linear(16, 2, rng=rng))])


def cascade_24net(rng):
    """24-net: 3x24x24 -> conv5x5 64 -> 64x20x20 -> pool 3/2 -> 64x9x9 -> relu -> fc 128 -> relu -> fc 2."""
    return Sequential([("conv1", Conv2D(3, 64, 5, rng=rng)), ("pool1", MaxPool2D(3, 2, ceil_mode=False)),
                       ("relu1", ReLU()), ("fc2", Linear(64 * 9 * 9, 128, rng=rng)), ("relu2", ReLU()),
                       ("face", Linear(128, 2, rng=rng))])


def cascade_48net(rng):
    """48-net: 3x48x48 -> conv5x5 64 -> 44 -> pool 3/2 -> 21 -> relu -> conv5x5 64 -> 17 -> pool 3/2 -> 8
    -> relu -> fc 256 -> relu -> fc 2."""
    return Sequential([("conv1", Conv2D(3, 64, 5, rng=rng)), ("pool1", MaxPool2D(3, 2, ceil_mode=False)),
                       ("relu1", ReLU()), ("conv2", Conv2D(64, 64, 5, rng=rng)),
                       ("pool2", MaxPool2D(3, 2, ceil_mode=False)), ("relu2", ReLU()),
                       ("fc3", Linear(64 * 8 * 8, 256, rng=rng)), ("relu3", ReLU()),
                       ("face", Linear(256, 2, rng=rng))])


# name -> (builder, input size, heads with their loss)
NETS = {
    "P-Net": (lambda rng: PNet(rng), 12, ("face", "box")),
    "R-Net": (lambda rng: RNet(rng), 24, ("face", "box")),
    "O-Net": (lambda rng: ONet(rng), 48, ("face", "box", "landmarks")),
    "Cascade 12-net": (cascade_12net, 12, ("face",)),
    "Cascade 24-net": (cascade_24net, 24, ("face",)),
    "Cascade 48-net": (cascade_48net, 48, ("face",)),
}
HEAD_SIZES = {"face": 2, "box": 4, "landmarks": 10}


def make_batch(N, size, heads, rng):
    x = rng.standard_normal((N, 3, size, size), dtype=DTYPE)
    labels = rng.integers(0, 2, N)
    targets = {h: rng.standard_normal((N, HEAD_SIZES[h]), dtype=DTYPE) * 0.1 for h in heads if h != "face"}
    return x, labels, targets


def our_step_fn(net, heads, x, labels, targets, optimizer, replicas=None):
    """One training step of our net: forward, losses, backward, SGD update; through
    ``replicas`` (`pipeline.fast.replicas.Replicas` of the net, as the training loop does) if given."""
    from contextlib import nullcontext

    from layers.modules import without_input_gradient

    multi_head = not isinstance(net, Sequential)
    model = replicas if replicas is not None else net

    def step():
        outs = model.forward(x)
        if not multi_head:
            outs = {"face": outs}
        douts = {}
        for h in heads:
            out = outs[h].reshape(x.shape[0], -1)  # P-Net's 1x1 maps -> (N, K)
            if h == "face":
                _, d = softmax_cross_entropy(out, labels)
            else:
                _, d = euclidean_loss(out, targets[h])
            douts[h] = d.reshape(outs[h].shape)
        # as the training loop does: no gradient for the input image (torch computes none
        # either); replicas copied that setting when they were made
        with without_input_gradient(net) if replicas is None else nullcontext():
            model.backward(douts if multi_head else douts["face"])
        optimizer.step()

    return step


def layer_macs(net, size):
    """Forward multiply-adds per sample of every conv and linear layer, and the largest
    forward GEMM (F, C*KH*KW, OH*OW) per sample. size: the input's side, or (height, width)."""
    from layers.modules import Module
    macs, biggest = 0, (0, 0, 0)
    shape = (3, *size) if isinstance(size, tuple) else (3, size, size)

    def walk(module, shape):
        nonlocal macs, biggest
        if isinstance(module, Sequential):
            for child in module.children.values():
                shape = walk(child, shape)
            return shape
        if isinstance(module, Conv2D):
            F, C, K, _ = module.params["w"].value.shape
            OH = conv_output_size(shape[1], K, module.stride, module.pad)
            OW = conv_output_size(shape[2], K, module.stride, module.pad)
            macs += F * C * K * K * OH * OW
            if F * C * K * K * OH * OW > np.prod(biggest):
                biggest = (F, C * K * K, OH * OW)
            return (F, OH, OW)
        if isinstance(module, Linear):
            D, M = module.params["w"].value.shape
            macs += D * M
            return (M,)
        if isinstance(module, MaxPool2D):
            OH = conv_output_size(shape[1], module.size, module.stride, ceil=module.ceil_mode)
            OW = conv_output_size(shape[2], module.size, module.stride, ceil=module.ceil_mode)
            return (shape[0], OH, OW)
        assert isinstance(module, Module)
        return shape

    trunk_shape = walk(net.trunk if hasattr(net, "trunk") else net, shape)
    if hasattr(net, "head_names"):
        for h in net.head_names:
            walk(net.children[h], trunk_shape)
    return macs, biggest


# ------------------------------------------------------------------------ torch twins


def torch_net(name, torch):
    """The same layer shapes in torch: returns (module, head names)."""
    nn = torch.nn

    class Heads(nn.Module):
        def __init__(self, trunk, heads, flatten_heads):
            super().__init__()
            self.trunk, self.heads, self.flatten_heads = trunk, nn.ModuleDict(heads), flatten_heads

        def forward(self, x):
            f = self.trunk(x)
            return {h: m(f).flatten(1) for h, m in self.heads.items()}

    def cp(c_in, c_out, k):
        return [nn.Conv2d(c_in, c_out, k), nn.PReLU(c_out)]

    pool_c = lambda k, s: nn.MaxPool2d(k, s, ceil_mode=True)  # noqa: E731
    if name == "P-Net":
        trunk = nn.Sequential(*cp(3, 10, 3), pool_c(2, 2), *cp(10, 16, 3), *cp(16, 32, 3))
        return Heads(trunk, {"face": nn.Conv2d(32, 2, 1), "box": nn.Conv2d(32, 4, 1)}, True)
    if name == "R-Net":
        trunk = nn.Sequential(*cp(3, 28, 3), pool_c(3, 2), *cp(28, 48, 3), pool_c(3, 2), *cp(48, 64, 2),
                              nn.Flatten(), nn.Linear(576, 128), nn.PReLU(128))
        return Heads(trunk, {"face": nn.Linear(128, 2), "box": nn.Linear(128, 4)}, False)
    if name == "O-Net":
        trunk = nn.Sequential(*cp(3, 32, 3), pool_c(3, 2), *cp(32, 64, 3), pool_c(3, 2), *cp(64, 64, 3),
                              pool_c(2, 2), *cp(64, 128, 2), nn.Flatten(), nn.Linear(1152, 256), nn.Dropout(0.25),
                              nn.PReLU(256))
        return Heads(trunk, {"face": nn.Linear(256, 2), "box": nn.Linear(256, 4),
                             "landmarks": nn.Linear(256, 10)}, False)
    pool_f = lambda: nn.MaxPool2d(3, 2, ceil_mode=False)  # noqa: E731
    if name == "Cascade 12-net":
        trunk = nn.Sequential(nn.Conv2d(3, 16, 3), pool_f(), nn.ReLU(), nn.Flatten(), nn.Linear(256, 16), nn.ReLU())
        return Heads(trunk, {"face": nn.Linear(16, 2)}, False)
    if name == "Cascade 24-net":
        trunk = nn.Sequential(nn.Conv2d(3, 64, 5), pool_f(), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 81, 128),
                              nn.ReLU())
        return Heads(trunk, {"face": nn.Linear(128, 2)}, False)
    if name == "Cascade 48-net":
        trunk = nn.Sequential(nn.Conv2d(3, 64, 5), pool_f(), nn.ReLU(), nn.Conv2d(64, 64, 5), pool_f(), nn.ReLU(),
                              nn.Flatten(), nn.Linear(64 * 64, 256), nn.ReLU())
        return Heads(trunk, {"face": nn.Linear(256, 2)}, False)
    raise KeyError(name)


def torch_worker(name: str, N: int, threads: int, repeats: int) -> None:
    """Time torch's step for one net and batch, alone in this process; prints JSON."""
    import json

    import torch
    torch.set_num_threads(threads)
    build, size, heads = NETS[name]
    rng = np.random.default_rng(0)
    build(rng)  # draws what our net draws, so that the batch below is the one ours gets
    x, labels, targets = make_batch(N, size, heads, rng)
    medians, spreads = median_times([torch_step_fn(torch, name, heads, x, labels, targets)], repeats)
    print(json.dumps({"median": medians[0], "spread": spreads[0], "version": torch.__version__}))


def time_torch(name: str, N: int, threads: int, repeats: int) -> dict:
    """torch's median step time and spread, measured in a fresh process (see the module doc)."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--torch-worker", name, str(N), "--threads", str(threads),
                           "--repeats", str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_step_fn(torch, name, heads, x, labels, targets):
    net = torch_net(name, torch)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    tx = torch.from_numpy(x)
    tlabels = torch.from_numpy(labels)
    ttargets = {h: torch.from_numpy(t) for h, t in targets.items()}

    def step():
        optimizer.zero_grad()
        outs = net(tx)
        loss = torch.nn.functional.cross_entropy(outs["face"], tlabels)
        for h in heads:
            if h != "face":
                loss = loss + ((outs[h] - ttargets[h]) ** 2).sum(dim=1).mean()
        loss.backward()
        optimizer.step()

    return step


# ------------------------------------------------------------------------ timing


def median_times(fns, repeats):
    """Median wall time of each fn() over ``repeats`` runs, after two warm-up calls each; the
    functions run alternately (give one function to time it alone). Returns (medians, spreads)
    with spread = (max - min) / median."""
    for fn in fns:
        fn()
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    medians = [statistics.median(t) for t in times]
    spreads = [(max(t) - min(t)) / m for t, m in zip(times, medians)]
    return medians, spreads


def profile_step(net, step, repeats):
    """Median time of each layer's forward and backward within a step, as {name: (fwd, bwd)}."""
    from layers.modules import Module
    timings = {}

    def wrap(name, module):
        fwd, bwd = module.forward, module.backward

        def timed_forward(x):
            start = time.perf_counter()
            out = fwd(x)
            timings.setdefault(name, ([], []))[0].append(time.perf_counter() - start)
            return out

        def timed_backward(dout):
            start = time.perf_counter()
            dx = bwd(dout)
            timings.setdefault(name, ([], []))[1].append(time.perf_counter() - start)
            return dx

        module.forward, module.backward = timed_forward, timed_backward
        return fwd, bwd

    leaves = []

    def collect(prefix, module):
        if module.children:
            for child_name, child in module.children.items():
                collect(prefix + child_name + ".", child)
        else:
            leaves.append((prefix.rstrip("."), module))

    collect("", net)
    saved = [(m, wrap(n, m)) for n, m in leaves]
    try:
        step()
        timings.clear()
        for _ in range(repeats):
            step()
    finally:
        for m, (fwd, bwd) in saved:
            m.forward, m.backward = fwd, bwd
    assert all(isinstance(m, Module) for _, m in leaves)
    return {n: (statistics.median(f) if f else 0.0, statistics.median(b) if b else 0.0)
            for n, (f, b) in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--nets", nargs="+", default=list(NETS), help="a subset of: " + ", ".join(NETS))
    parser.add_argument("--profile", action="store_true", help="also time every layer (batch 256)")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even when it is importable")
    parser.add_argument("--torch-worker", nargs=2, metavar=("NET", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.torch_worker[0], int(args.torch_worker[1]), args.threads, args.repeats)
        return

    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
        from layers import batch_chunks
        thread_note = (f"{batch_chunks.get_threads()} layer threads with BLAS on one thread for our steps, "
                       f"{args.threads} BLAS threads for the plain matmul")
    except ImportError:
        thread_note = "threadpoolctl missing: BLAS threads as set by OPENBLAS_NUM_THREADS"
    import importlib.util
    torch = not args.no_torch and importlib.util.find_spec("torch") is not None  # timed in its own process
    print(f"facecascade training-step benchmark (float32, median of {args.repeats})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {thread_note}"
          + (f", torch ({args.threads} threads, in a separate process)" if torch else ", torch not importable"))
    header = (f"{'net':<15} {'batch':>5} {'ours ms':>8} {'ours/s':>8} {'spread':>6} {'1 net ms':>8} {'GMAC/s':>7} "
              f"{'mm GMAC/s':>9}" + (f" {'torch ms':>8} {'torch/s':>8} {'spread':>6} {'ours/torch':>10}" if torch else ""))
    print(header)
    print("-" * len(header))
    profiles = {}
    for name in args.nets:
        build, size, heads = NETS[name]
        for N in args.batches:
            rng = np.random.default_rng(0)
            net = build(rng)
            x, labels, targets = make_batch(N, size, heads, rng)
            optimizer = SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
            step = our_step_fn(net, heads, x, labels, targets, optimizer)
            macs, (F, CKK, OHOW) = layer_macs(net, size)
            a = rng.standard_normal((F, CKK), dtype=DTYPE)
            b = rng.standard_normal((CKK, N * OHOW), dtype=DTYPE)
            # each timed in a block of its own: alternated, the matmul's spinning BLAS threads slowed our step
            with slices_not_blas(), reuse_freed_memory():  # as the training loop runs it: two replicas
                with without_input_gradient(net), Replicas(net) as replicas:
                    replicated = our_step_fn(net, heads, x, labels, targets, optimizer, replicas)
                    (t_ours,), (spread_ours,) = median_times([replicated], args.repeats)
            with slices_not_blas(), reuse_freed_memory():  # the net alone, its layers sharing out their work
                (t_net,), _ = median_times([step], args.repeats)
            (t_mm,), _ = median_times([lambda: np.matmul(a, b)], args.repeats)
            line = (f"{name:<15} {N:5d} {t_ours * 1e3:8.2f} {N / t_ours:8.0f} {spread_ours:6.0%} {t_net * 1e3:8.2f} "
                    f"{3 * macs * N / t_ours / 1e9:7.1f} {F * CKK * OHOW * N / t_mm / 1e9:9.1f}")
            if torch:
                theirs = time_torch(name, N, args.threads, args.repeats)
                t_torch = theirs["median"]
                line += f" {t_torch * 1e3:8.2f} {N / t_torch:8.0f} {theirs['spread']:6.0%} {t_torch / t_ours:10.2f}"
            print(line, flush=True)
            if args.profile and N == max(args.batches):
                with slices_not_blas():
                    profiles[name] = (t_net, profile_step(net, step, max(5, args.repeats // 2)))

    for name, (t_step, layers) in profiles.items():
        print(f"\n{name}: step {t_step * 1e3:.2f} ms (one net, no replicas); per layer median ms (forward, backward, "
              "share of step)")
        for layer, (f, b) in layers.items():
            print(f"  {layer:<14} {f * 1e3:7.2f} {b * 1e3:7.2f}  {(f + b) / t_step:5.0%}")
        rest = t_step - sum(f + b for f, b in layers.values())
        print(f"  {'losses+SGD+..':<14} {rest * 1e3:7.2f}")


if __name__ == "__main__":
    main()
