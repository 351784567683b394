# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. Making it fast
#
# Tutorials 1-4 teach the algorithm: convolution as im2col and a matrix multiply, backprop,
# P-Net, the MTCNN cascade. The detector you ran there is faster than that code alone, by four
# devices that change how the work is laid out, never what is computed. This tutorial opens
# each one and measures it on your machine:
#
# 1. the *runner seam*: the detector's stages ask a runner for their heavy steps, and the plain
#    runner and the fast one find the same faces;
# 2. the **batch-last layout**: the same matrix multiplies, with the batch as the last axis;
# 3. a convolution on a **tiny map** as one matrix, and a convolution and its 2x2 pooling as one
#    multiply over 2x2 blocks;
# 4. **processes, not threads**, for the detector's workers.
#
# Every device has a slow, obvious twin (the layers of tutorial 1, the plain runner) and a test
# that the two agree. The speed-ups printed are this machine's: they depend on the CPU, its
# BLAS library and whatever else runs. Section 9.1 uses scikit-image's astronaut photo
# (`python -m pip install scikit-image`).

# %%
import os
import time

import numpy as np
from matplotlib.figure import Figure

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import conv_forward, conv_forward_naive
from layers.conv import col2im, im2col
from nets import RNet
from pipeline.data.images import to_chw_float
from pipeline.detection.mtcnn import MTCNNDetector

OUT = _tutorial.output_dir("09_making_it_fast")
QUICK = _tutorial.QUICK
rng = np.random.default_rng(1)
speedups = {}  # what each device gained here, for the figure at the end

# %% [markdown]
# ## 9.1 One seam: the plain runner and the fast one
#
# `MTCNNDetector` never runs a net itself. Its stages ask a *runner* for two heavy steps:
# `scan_levels` (resize the image to every pyramid level and run P-Net over each) and
# `score_crops` (cut boxes out, resize them to 24 or 48 px and run R-Net or O-Net). The plain
# runner, `pipeline/detection/runner.py`, does them in the most direct way, one after the other
# in this process; read it in one screen. The fast runner, `pipeline/fast/runner.py`, does the
# same work with the devices of sections 9.2-9.5. Same photo, both runners:

# %%
astronaut = _tutorial.astronaut()          # (512, 512, 3) uint8 RGB
image_chw = to_chw_float(astronaut)        # (3, 512, 512) float32, 0..255
det = MTCNNDetector(workers=1)             # the fast runner, in this process only
plain = MTCNNDetector(runner="plain")
fast_faces, plain_faces = det.detect(astronaut), plain.detect(astronaut)
print("fast :", [(np.round(f.box, 1).tolist(), round(f.score, 4)) for f in fast_faces])
print("plain:", [(np.round(f.box, 1).tolist(), round(f.score, 4)) for f in plain_faces])
assert len(fast_faces) == len(plain_faces)
assert all(np.allclose(f.box, p.box, atol=0.01) for f, p in zip(fast_faces, plain_faces))
t_plain = _tutorial.best_time(lambda: plain.detect(astronaut), 1 if QUICK else 5)
t_fast = _tutorial.best_time(lambda: det.detect(astronaut), 1 if QUICK else 5)
speedups["fast runner, 1 worker"] = t_plain / t_fast
print(f"one detection: plain runner {1000 * t_plain:.0f} ms, fast runner on one worker {1000 * t_fast:.0f} ms")

# %% [markdown]
# The boxes agree to a hundredth of a pixel, not to the last bit: the fast layouts sum the same
# products in another order. Step through `plain.detect(...)` in a debugger to see every step
# of tutorial 4 happen; the rest of this tutorial looks inside the fast runner.

# %% [markdown]
# ## 9.2 The same matrix multiply, a faster layout: batch last
#
# The detector runs R-Net on hundreds of 24x24 crops at once. There, the matrix multiply is no
# longer what takes the time: moving memory around it is. `conv_forward` copies the windows into
# `cols` (C*KH*KW, N*OH*OW), multiplies, and then must *transpose* the product (F, N*OH*OW) back
# into (N, F, OH, OW), add the bias in another pass, and the next layers walk the maps with
# short strides.
#
# `pipeline.fast.batch_last` keeps the batch as the **last** axis, `x: (C, H, W, N)`. Three things get
# cheaper, with the very same arithmetic:
#
# * the window at kernel offset (p, q) of *every* crop is one slice `x[:, p:p+OH, q:q+OW, :]`,
#   whose rows are long contiguous runs, so filling `cols` is 9 big copies;
# * `cols` gets one extra row of ones and the weight matrix the bias as an extra column, so the
#   bias is added inside the matrix multiply;
# * the product (F, OH*OW*N) is already the next layer's input: no transpose.
#
# One R-Net convolution, both ways, same numbers:

# %%
from pipeline.fast.batch_last import BatchLast, conv_batch_last  # noqa: E402
from layers.modules import inference_mode  # noqa: E402

crops = rng.uniform(-1, 1, (16 if QUICK else 256, 3, 24, 24)).astype(np.float32)
w_r = rng.standard_normal((28, 3, 3, 3)).astype(np.float32)
b_r = rng.standard_normal(28).astype(np.float32)
w_aug = np.concatenate([w_r.reshape(28, -1), b_r[:, None]], axis=1)  # (F, C*KH*KW + 1)
crops_last = np.ascontiguousarray(crops.transpose(1, 2, 3, 0))      # (C, H, W, N)
out_last = conv_batch_last(crops_last, w_aug, 3, 3)                   # (F, OH, OW, N)
out_first, _ = conv_forward(crops, w_r, b_r)                         # (N, F, OH, OW)
print("batch last:", out_last.shape, " batch first:", out_first.shape)
print(f"max |difference| = {np.abs(out_last.transpose(3, 0, 1, 2) - out_first).max():.1e} (float32 rounding at most)")

# %% [markdown]
# The same idea runs through a whole net: PReLU works on each channel's contiguous row, max
# pooling takes its running maximum along rows and then columns over long contiguous runs, and
# a fully connected layer is `w.T @ features` with no reshuffling. One more trick saves work
# without changing a number: a PReLU whose slope is >= 0 never decreases, so the largest value
# of a window after it is the PReLU of the window's largest value. Such channels are pooled
# first and get their PReLU on a map a quarter the size. `BatchLast(net)` runs any
# MTCNN net that way and returns what `net.forward` returns, up to float32 rounding (the sums
# run in another order). Timing a whole R-Net:

# %%
rnet = RNet()
fast_rnet = BatchLast(rnet)
with inference_mode(rnet):
    layer_by_layer = rnet.forward(crops)
    t_first = _tutorial.best_time(lambda: rnet.forward(crops), 2 if QUICK else 10)
batch_last_out = fast_rnet.forward(crops)
t_last = _tutorial.best_time(lambda: fast_rnet.forward(crops), 2 if QUICK else 10)
print(f"largest difference in the face logits: {np.abs(batch_last_out['face'] - layer_by_layer['face']).max():.1e}")
print(f"R-Net on {len(crops)} crops: layer by layer (N, C, H, W) {1000 * t_first:.1f} ms, "
      f"batch last {1000 * t_last:.1f} ms: {t_first / t_last:.1f}x faster")

# %% [markdown]
# The layers in `layers/` stay in (N, C, H, W), because that is the layout the formulas, the
# backward passes and every other tutorial use. The detector wraps its nets in `BatchLast` only
# to run them; `tests/test_batch_last.py` checks each of its steps against the naive loops.

# %% [markdown]
# ## 9.3 On a tiny map, the convolution is one matrix
#
# A convolution is *linear* in its input: for a fixed input size it is a matrix. Flatten each
# sample to a row of C*H*W numbers; then `out_flat = x_flat @ M + bias`, where column (f, i, j)
# of M holds the kernel w[f] at the place of window (i, j) and zeros elsewhere. On a large image
# M is huge and almost all zeros, which is why im2col exists. But P-Net's conv2 in training sees
# 5 x 5 maps: there M is 250 x 144 and a third of it is weights, while im2col copies its windows
# as rows of 3 numbers. `layers/conv_matrix.py` builds M from w (each weight copied to its
# OH*OW places) and `conv_forward` uses it when the map is that small. Here is M for one filter
# on a 4 x 4 map, and the two ways agreeing:

# %%
from layers import conv_matrix  # noqa: E402

w_small = rng.standard_normal((1, 1, 3, 3))
M = conv_matrix.conv_matrix(w_small, 4, 4)  # (1*4*4, 1*2*2): four windows of a 4x4 map
print("M.T (one row per output pixel, one column per input pixel):")
with np.printoptions(linewidth=130, precision=2, suppress=True):
    print(M.T)
x_small = rng.standard_normal((2, 1, 4, 4))
by_matrix = (x_small.reshape(2, -1) @ M).reshape(2, 1, 2, 2)
by_loops, _ = conv_forward_naive(x_small, w_small, np.zeros(1))
print(f"max |matrix - loops| = {np.abs(by_matrix - by_loops).max():.1e}")

# %% [markdown]
# Its backward pass is two more matrix multiplies: dx_flat = dout_flat @ M.T, and
# dM = x_flat.T @ dout_flat, from which each weight's gradient is the sum of dM over that
# weight's OH*OW places. Timing P-Net's conv2 on a training batch, forward and backward:

# %%
x_p = rng.standard_normal((128, 10, 5, 5)).astype(np.float32)
w_p = rng.standard_normal((16, 10, 3, 3)).astype(np.float32)
b_p = np.zeros(16, np.float32)
dout_p = rng.standard_normal((128, 16, 3, 3)).astype(np.float32)


def step_by_matrix():
    out = conv_matrix.matrix_conv_forward(x_p, w_p, b_p, 1)
    return out, conv_matrix.matrix_conv_backward(dout_p, x_p, w_p, 1)


def step_by_im2col():  # what conv_forward does on larger maps, called directly
    cols = im2col(x_p, 3, 3)
    out = (w_p.reshape(16, -1) @ cols).reshape(16, 128, 3, 3).transpose(1, 0, 2, 3)
    dout_mat = dout_p.transpose(1, 0, 2, 3).reshape(16, -1)
    dw = dout_mat @ im2col(x_p, 3, 3).T
    dx = col2im(w_p.reshape(16, -1).T @ dout_mat, x_p.shape, 3, 3)
    return out, (dx, dw.reshape(w_p.shape), dout_p.sum(axis=(0, 2, 3)))


(out_m, (dx_m, dw_m, _)), (out_i, (dx_i, dw_i, _)) = step_by_matrix(), step_by_im2col()
print(f"largest differences: out {np.abs(out_m - out_i).max():.1e}, dx {np.abs(dx_m - dx_i).max():.1e}, "
      f"dw {np.abs(dw_m - dw_i).max():.1e} (float32 rounding)")
t_matrix = _tutorial.best_time(step_by_matrix, 3 if QUICK else 30)
t_im2col = _tutorial.best_time(step_by_im2col, 3 if QUICK else 30)
print(f"conv2 forward + backward on 128 samples: im2col {1000 * t_im2col:.2f} ms, "
      f"matrix {1000 * t_matrix:.2f} ms: {t_im2col / t_matrix:.1f}x faster")

# %% [markdown]
# ## 9.4 A convolution and its 2x2 pooling as one matrix multiply
#
# P-Net's first layer has only C*KH*KW = 27 inputs per output, and a 2x2/2 max pooling
# follows it. With so few inputs, im2col copies 27 numbers per output pixel and the matrix
# multiply mostly waits for them. Look at one pooling window instead: it takes the maximum of
# a 2x2 block of convolution outputs, and those four outputs together read one 4x4 patch of
# the image (3x3 windows at offsets (0,0), (0,1), (1,0), (1,1)). So:
#
# * the columns are the 4x4 patches, one per *pooled* pixel: 16 numbers per channel where
#   im2col copies 4 x 9 = 36 for the same four outputs;
# * the weight matrix has 4F rows: row (u, v, f) is filter f placed at offset (u, v) inside
#   the 4x4 patch, zeros elsewhere (`pipeline.fast.batch_last.block_weights`);
# * one multiply gives the four outputs of every block as four blocks of F rows, and the
#   pooling is the maximum of those four blocks, element by element, over contiguous rows.
#
# It multiplies by zeros 7 times out of 16, but on a layer this thin, memory is the limit, not
# arithmetic. The placed weights of one filter, and the fused layer against the three steps:

# %%
from pipeline.fast.batch_last import block_weights, conv_pool2_batch_last, maxpool_batch_last, prelu_rows_  # noqa: E402

w_one = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
print("block_weights of one 3x3 filter, one row per position (u, v) of the 2x2 block, as 4x4 patches:")
print(block_weights(w_one, np.zeros(1, np.float32))[:, :-1].reshape(4, 4, 4))

level = rng.uniform(-1, 1, (3, 130 if QUICK else 400, 640)).astype(np.float32)[..., None]  # (C, H, W, N=1)
w1 = rng.standard_normal((10, 3, 3, 3)).astype(np.float32)
b1 = rng.standard_normal(10).astype(np.float32)
slopes = np.full(10, 0.25, np.float32)  # positive slopes: k = 0 channels need the PReLU before pooling
blocks = block_weights(w1, b1)


def three_steps():
    conv = conv_batch_last(level, np.concatenate([w1.reshape(10, -1), b1[:, None]], axis=1), 3, 3)
    return maxpool_batch_last(prelu_rows_(conv, slopes), 2, 2, ceil_mode=True)


def one_multiply():
    return conv_pool2_batch_last(level, blocks, 3, 3, True, slopes, 0)


print(f"max |blocks - three steps| = {np.abs(one_multiply() - three_steps()).max():.1e}")
t_blocks = _tutorial.best_time(one_multiply, 3 if QUICK else 20)
t_steps = _tutorial.best_time(three_steps, 3 if QUICK else 20)
print(f"P-Net's conv1 + PReLU + pool1 on a {level.shape[2]} x {level.shape[1]} level: three steps "
      f"{1000 * t_steps:.1f} ms, 2x2 blocks {1000 * t_blocks:.1f} ms: {t_steps / t_blocks:.1f}x faster")

# %% [markdown]
# ## 9.5 Two cores: threads or processes?
#
# With several `workers` (default: the CPUs, at most four), `detect` shares each stage among
# them: each worker resizes and scans its own pyramid levels, then crops and scores its own
# boxes. Python's *threads* would be the obvious tool, but the threads of one process take
# turns at the interpreter lock (the GIL): NumPy lets go of it inside large loops and matrix
# multiplies, not in the many small calls of a small pyramid level. Here is P-Net on a 40 x 40
# level, alone and then in two threads at once:

# %%
import threading

from pipeline.fast.batch_last import BatchLast
from pipeline.detection.proposals import normalize
from pipeline.detection.resize import resize_area
from pipeline.fast.strips import pnet_maps_in_strips

small_level = normalize(resize_area(image_chw, 40, 40))   # (3, 40, 40)
pnet_fast = BatchLast(det.pnet)                           # P-Net in the detector's layout
repeats = 50 if _tutorial.QUICK else 400


def scan_small_level(times):
    start = time.perf_counter()
    for _ in range(repeats):
        pnet_maps_in_strips(pnet_fast, small_level)
    times.append((time.perf_counter() - start) / repeats)


alone = []
scan_small_level(alone)
both = []
threads = [threading.Thread(target=scan_small_level, args=(both,)) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"P-Net on a 40 x 40 level: {alone[0] * 1e3:.2f} ms alone, "
      f"{np.mean(both) * 1e3:.2f} ms each in two threads at once")

# %% [markdown]
# Each thread is slower than one alone, by more than the second core gives back. So the
# detector's workers are *processes* (`pipeline/fast/helpers.py`): forks of this one, made once, that
# have their own interpreter lock. The image reaches them through memory the processes share;
# the shares of work and their results, which are small, through pipes
# (`benchmarks/README.md` has the figures measured on the project's 2-core machine). The whole
# detector, with one worker and with two:

# %%
runs = 3 if _tutorial.QUICK else 10
per_detection = {}
for workers in (1, 2):
    detector = MTCNNDetector(workers=workers)
    for _ in range(3):  # the first calls start the helper, grow both processes' memory and, once,
        detector.detect(astronaut)  # let BLAS restart its threads after the fork (they spin ~0.1 s)
    start = time.perf_counter()
    for _ in range(runs):
        detector.detect(astronaut)
    per_detection[workers] = (time.perf_counter() - start) / runs
    print(f"{workers} worker(s): {per_detection[workers] * 1e3:.0f} ms per detection")
print(f"(this computer has {os.cpu_count()} CPUs; with one, two workers cannot be faster)")

# %% [markdown]
# ## 9.6 What each device gained here

# %%
speedups["batch last, R-Net"] = t_first / t_last
speedups["tiny-map matrix, conv2 step"] = t_im2col / t_matrix
speedups["conv + pool as blocks"] = t_steps / t_blocks
if 2 in per_detection and 1 in per_detection:
    speedups["two worker processes"] = per_detection[1] / per_detection[2]
fig = Figure(layout="constrained", figsize=(7, 0.5 + 0.5 * len(speedups)))
ax = fig.subplots()
names, values = list(speedups), list(speedups.values())
ax.barh(names, values, color="tab:green")
ax.axvline(1, color="gray", lw=1)
for y, v in enumerate(values):
    ax.text(v, y, f" {v:.1f}x", va="center")
ax.set_xlabel("speed-up on this machine (1 = no gain)")
ax.set_title("Each speed device against its plain twin, same numbers")
_tutorial.save(fig, OUT / "speedups.png")
for name, value in speedups.items():
    print(f"{name:30s} {value:5.1f}x")

# %% [markdown]
# ## Exercises
#
# 1. **Strips.** `pipeline.fast.strips.InStrips(net, tile_pixels=...)` runs P-Net over a level
#    in strips. Time `pnet_maps(InStrips(pnet_fast, tile_pixels=t), level)` (`pnet_maps` from
#    `pipeline.detection.proposals`) for t = 16,000,
#    64,000 and 1,000,000 on a 1280 x 886 level. *Hint:* small strips keep each layer's output in
#    the CPU cache; too small ones repeat the 10 rows of context strips share.
# 2. **Where the time goes.** Time `det.propose`, `det.refine` and `det.output` on the
#    astronaut inside `with det.session(astronaut) as image_chw:`. Which stage would you speed up
#    first? *Hint:* stage 1 touches every pixel of every pyramid level.
# 3. **Same numbers?** Compare `BatchLast(rnet).forward(crops)["face"]` with
#    `rnet.forward(crops)["face"]` in float64 crops. Why are they closer than in float32?
#    *Hint:* the two orders of summation round differently; float64 keeps 16 digits.
