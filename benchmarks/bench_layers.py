"""How fast are the hand-written conv and max-pool layers on the shapes the detectors really use?

Run by hand:  python benchmarks/bench_layers.py      (under a minute on 2 cores; it asserts nothing)

How to read the numbers
-----------------------
Every time is the *best* of several repeats (time.perf_counter), in float32, the pipeline's dtype.
The best, not the mean, is the number least disturbed by whatever else the machine is doing; the
fast layer, its forward+backward and the reference matmul are timed interleaved, so that a burst
of load hits all three alike.

* ``fwd ms`` / ``f+b ms``: conv_forward alone, and conv_forward + conv_backward (dx, dw, db).
* ``GFLOP/s``: a convolution does 2*N*F*OH*OW*C*KH*KW floating-point operations (a multiply and
  an add per weight per output); the backward pass is counted as twice the forward (one GEMM for
  dw, one for dx), so forward+backward is 3x the forward's FLOPs.
* ``matmul GFLOP/s``: a plain float32 ``np.matmul`` of the *same* GEMM the forward pass does,
  (F x C*KH*KW) @ (C*KH*KW x N*OH*OW). It is what BLAS can do for that shape on this machine,
  so ``fwd %mm`` = fast forward GFLOP/s / matmul GFLOP/s says how close im2col gets to the BLAS
  limit; what is missing is the time spent copying windows into the im2col matrix and
  transposing the result. ``f+b %mm`` compares forward+backward GFLOP/s with the same matmul
  (the backward's GEMMs have other shapes, and col2im adds more copying).
* ``x naive``: how many times faster the fast version is than the loop version
  (conv_forward_naive, maxpool_forward_naive and their backward). The loops are far too slow to
  run on the full shapes, so they are timed on a reduced input (batch 1 and at most 12x12 output
  pixels, printed in the ``naive on`` column) and the time is scaled up by the ratio of output
  pixels (N*OH*OW), which is how the loop cost grows (every output pixel is one trip through
  the loop body for each of the F filters, or each of the C channels for pooling).
* Max pooling does no multiply-adds, so its rows show only times and the naive ratio.

At the end: overall forward and forward+backward efficiency over all the conv shapes
(total FLOPs / total time, relative to the matmul's), with the targets (>= 40 % and >= 25 %)
and whether they are met. Small layers (O-Net conv4 on 4x4 maps) are dominated by Python
and copying overhead; the big P-Net layers dominate the total.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layers import (conv_backward, conv_backward_naive, conv_forward, conv_forward_naive,  # noqa: E402
                    conv_output_size, maxpool_backward, maxpool_backward_naive, maxpool_forward,
                    maxpool_forward_naive)

DTYPE = np.float32
FORWARD_TARGET = 0.40  # fast forward GFLOP/s as a fraction of the same-size matmul's
TRAINING_TARGET = 0.25  # forward+backward, likewise
NAIVE_MAX_OUT = 12  # the naive loops run on at most this many output rows/columns, batch 1
MAX_REPEATS = 15
TIME_PER_MEASUREMENT = 3.0  # seconds per layer: fewer repeats for slow layers, keeping the run short

# (name, (N, C, H, W), F, kernel) -- stride 1, no padding, as in the papers
CONV_SHAPES = [
    ("P-Net conv1 (640x480)", (1, 3, 480, 640), 10, 3),
    ("P-Net conv2", (1, 10, 239, 319), 16, 3),
    ("P-Net conv3", (1, 16, 237, 317), 32, 3),
    ("R-Net conv1 (b256)", (256, 3, 24, 24), 28, 3),
    ("R-Net conv2", (256, 28, 11, 11), 48, 3),
    ("R-Net conv3", (256, 48, 4, 4), 64, 2),
    ("O-Net conv1 (b64)", (64, 3, 48, 48), 32, 3),
    ("O-Net conv2", (64, 32, 23, 23), 64, 3),
    ("O-Net conv3", (64, 64, 10, 10), 64, 3),
    ("O-Net conv4", (64, 64, 4, 4), 128, 2),
    ("Cascade 24-net conv (b128)", (128, 3, 24, 24), 64, 5),
    ("Cascade 48-net conv (b64)", (64, 3, 48, 48), 64, 5),
]

# (name, (N, C, H, W), size, stride) -- Caffe's ceil mode
POOL_SHAPES = [
    ("P-Net pool1 2/2 (640x480)", (1, 10, 478, 638), 2, 2),
    ("O-Net pool1 3/2", (64, 32, 46, 46), 3, 2),
    ("O-Net pool2 3/2", (64, 64, 21, 21), 3, 2),
    ("O-Net pool3 2/2", (64, 64, 8, 8), 2, 2),
]


def best_times(*fns) -> list[float]:
    """Best wall time of each fn() over a few repeats, after one warm-up call each.

    The functions run interleaved (f1, f2, f3, f1, f2, f3, ...), so a burst of load from other
    processes hurts them all alike and their ratios stay meaningful on a busy machine.
    """
    firsts = []
    for fn in fns:
        start = time.perf_counter()
        fn()
        firsts.append(time.perf_counter() - start)
    repeats = int(max(3, min(MAX_REPEATS, TIME_PER_MEASUREMENT / max(sum(firsts), 1e-9))))
    best = list(firsts)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def thread_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
        return ", ".join(f"{p['internal_api']} {p['num_threads']} threads" for p in pools) or "no BLAS pools found"
    except ImportError:
        names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        env = {k: os.environ[k] for k in names if k in os.environ}
        extra = f", env {env}" if env else ""
        return f"threadpoolctl not installed; os.cpu_count() = {os.cpu_count()}{extra}"


def blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


def reduced_input(shape, kernel, stride=1):
    """Batch 1 and a spatial size giving at most NAIVE_MAX_OUT output rows/columns."""
    N, C, H, W = shape
    side = (NAIVE_MAX_OUT - 1) * stride + kernel
    return (1, C, min(H, side), min(W, side))


def bench_conv(name, shape, F, k, rng):
    N, C, H, W = shape
    OH, OW = conv_output_size(H, k), conv_output_size(W, k)
    x = rng.standard_normal(shape, dtype=DTYPE)
    w = (rng.standard_normal((F, C, k, k), dtype=DTYPE) / np.sqrt(C * k * k)).astype(DTYPE)
    b = np.zeros(F, dtype=DTYPE)
    dout = rng.standard_normal((N, F, OH, OW), dtype=DTYPE)

    ckk, cols = C * k * k, N * OH * OW
    a_mat = rng.standard_normal((F, ckk), dtype=DTYPE)
    b_mat = rng.standard_normal((ckk, cols), dtype=DTYPE)

    def forward_backward():
        _, cache = conv_forward(x, w, b)
        conv_backward(dout, cache)

    t_fwd, t_fb, t_mm = best_times(lambda: conv_forward(x, w, b), forward_backward, lambda: np.matmul(a_mat, b_mat))

    # the loop version on a reduced input, scaled by output pixels
    r_shape = reduced_input(shape, k)
    rOH, rOW = conv_output_size(r_shape[2], k), conv_output_size(r_shape[3], k)
    xr = rng.standard_normal(r_shape, dtype=DTYPE)
    dr = rng.standard_normal((1, F, rOH, rOW), dtype=DTYPE)
    scale = (N * OH * OW) / (rOH * rOW)
    start = time.perf_counter()
    _, cache = conv_forward_naive(xr, w, b)
    t_naive_fwd = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    conv_backward_naive(dr, cache)
    t_naive_fb = t_naive_fwd + (time.perf_counter() - start) * scale

    flops = 2.0 * N * F * OH * OW * C * k * k
    return dict(name=name, shape=shape, out=(N, F, OH, OW), gemm=(F, ckk, cols), flops=flops, t_fwd=t_fwd, t_fb=t_fb,
                t_mm=t_mm, naive_on=r_shape, naive_fwd=t_naive_fwd / t_fwd, naive_fb=t_naive_fb / t_fb)


def bench_pool(name, shape, size, stride, rng):
    N, C, H, W = shape
    OH, OW = conv_output_size(H, size, stride, ceil=True), conv_output_size(W, size, stride, ceil=True)
    x = rng.standard_normal(shape, dtype=DTYPE)
    dout = rng.standard_normal((N, C, OH, OW), dtype=DTYPE)
    def forward_backward():
        _, cache = maxpool_forward(x, size, stride, ceil_mode=True)
        maxpool_backward(dout, cache)

    t_fwd, t_fb = best_times(lambda: maxpool_forward(x, size, stride, ceil_mode=True), forward_backward)

    r_shape = reduced_input(shape, size, stride)
    rOH = conv_output_size(r_shape[2], size, stride, ceil=True)
    rOW = conv_output_size(r_shape[3], size, stride, ceil=True)
    xr = rng.standard_normal(r_shape, dtype=DTYPE)
    scale = (N * OH * OW) / (rOH * rOW)
    start = time.perf_counter()
    _, cache = maxpool_forward_naive(xr, size, stride, ceil_mode=True)
    t_naive_fwd = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    maxpool_backward_naive(rng.standard_normal((1, C, rOH, rOW), dtype=DTYPE), cache)
    t_naive_fb = t_naive_fwd + (time.perf_counter() - start) * scale
    return dict(name=name, shape=shape, out=(N, C, OH, OW), t_fwd=t_fwd, t_fb=t_fb, naive_on=r_shape,
                naive_fwd=t_naive_fwd / t_fwd, naive_fb=t_naive_fb / t_fb)


def fmt_shape(shape) -> str:
    return "x".join(str(s) for s in shape)


def main() -> None:
    wall = time.perf_counter()
    rng = np.random.default_rng(0)
    print("facecascade layer benchmark (float32, best of several repeats)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, BLAS {blas_name()}")
    print(f"threads: {thread_info()}")
    print()

    header = (f"{'conv layer':<27} {'input':>14} {'GEMM F x CKK x NOHOW':>22} {'fwd ms':>8} {'f+b ms':>8} "
              f"{'fwd GF/s':>9} {'f+b GF/s':>9} {'mm GF/s':>8} {'fwd %mm':>8} {'f+b %mm':>8} "
              f"{'x naive fwd':>11} {'x naive f+b':>11}  naive on")
    print(header)
    print("-" * len(header))
    rows = []
    for name, shape, F, k in CONV_SHAPES:
        r = bench_conv(name, shape, F, k, rng)
        rows.append(r)
        gf_fwd = r["flops"] / r["t_fwd"] / 1e9
        gf_fb = 3 * r["flops"] / r["t_fb"] / 1e9
        gf_mm = r["flops"] / r["t_mm"] / 1e9
        print(f"{name:<27} {fmt_shape(shape):>14} {fmt_shape(r['gemm']):>22} {r['t_fwd'] * 1e3:8.2f} "
              f"{r['t_fb'] * 1e3:8.2f} {gf_fwd:9.1f} {gf_fb:9.1f} {gf_mm:8.1f} {gf_fwd / gf_mm:8.0%} "
              f"{gf_fb / gf_mm:8.0%} {r['naive_fwd']:11.0f} {r['naive_fb']:11.0f}  {fmt_shape(r['naive_on'])}",
              flush=True)

    print()
    header = (f"{'max pool (ceil mode)':<27} {'input':>14} {'output':>14} {'fwd ms':>8} {'f+b ms':>8} "
              f"{'x naive fwd':>11} {'x naive f+b':>11}  naive on")
    print(header)
    print("-" * len(header))
    for name, shape, size, stride in POOL_SHAPES:
        r = bench_pool(name, shape, size, stride, rng)
        print(f"{name:<27} {fmt_shape(shape):>14} {fmt_shape(r['out']):>14} {r['t_fwd'] * 1e3:8.2f} "
              f"{r['t_fb'] * 1e3:8.2f} {r['naive_fwd']:11.0f} {r['naive_fb']:11.0f}  {fmt_shape(r['naive_on'])}",
              flush=True)

    # overall: total FLOPs over total time, relative to the matmuls' total FLOPs over their total time
    total_flops = sum(r["flops"] for r in rows)
    mm_rate = total_flops / sum(r["t_mm"] for r in rows)
    fwd_rate = total_flops / sum(r["t_fwd"] for r in rows)
    fb_rate = 3 * total_flops / sum(r["t_fb"] for r in rows)
    fwd_share, fb_share = fwd_rate / mm_rate, fb_rate / mm_rate
    print()
    print(f"overall conv (all {len(rows)} shapes, {total_flops / 1e9:.2f} GFLOP per forward):")
    print(f"  matmul of the same GEMMs : {mm_rate / 1e9:7.1f} GFLOP/s")
    print(f"  fast forward             : {fwd_rate / 1e9:7.1f} GFLOP/s = {fwd_share:4.0%} of matmul "
          f"(target >= {FORWARD_TARGET:.0%}: {'met' if fwd_share >= FORWARD_TARGET else 'NOT met'})")
    print(f"  fast forward + backward  : {fb_rate / 1e9:7.1f} GFLOP/s = {fb_share:4.0%} of matmul "
          f"(target >= {TRAINING_TARGET:.0%}: {'met' if fb_share >= TRAINING_TARGET else 'NOT met'})")
    print(f"benchmark wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
