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
# # 1. Convolution by hand
#
# Every net in this project (P-Net, R-Net, O-Net, the Cascade-CNN nets) is mostly
# convolutions. In this tutorial you will
#
# 1. compute a tiny convolution with pencil and paper and check it against the library;
# 2. read the naive version, `layers.conv_forward_naive`: four loops, obviously right;
# 3. see **im2col**, the trick that turns a convolution into one matrix multiply, first as a
#    picture and then as code (`layers.conv.im2col`, used by the fast `layers.conv_forward`);
# 4. learn the output-size formula, including Caffe's *ceil mode* for pooling that MTCNN needs;
# 5. time the naive loops against the fast version on a P-Net layer and check they agree.
#
# How the detector goes faster still (the batch as the last axis, a convolution on a tiny map
# as one matrix) is tutorial 9, "Making it fast".
#
# Shapes follow one vocabulary everywhere: `x: (N, C, H, W)` (batch, channels, height,
# width), `w: (F, C, KH, KW)` (F filters), `b: (F,)`, `out: (N, F, OH, OW)`.

# %%
import inspect

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import conv_forward, conv_forward_naive, conv_output_size, maxpool_forward
from layers.conv import im2col
from nets import PNet, RNet
from pipeline.plots import draw_number_grid

OUT = _tutorial.output_dir("01_convolution_by_hand")
QUICK = _tutorial.QUICK

# %% [markdown]
# ## 1.1 A convolution you can do in your head
#
# Take a 3x3 input and a 2x2 kernel:
#
# ```
#         x                K
#    1  2  3             1  2
#    4  5  6             3  4
#    7  8  9
# ```
#
# Slide the kernel over the input. At each position, multiply the four pairs of numbers that
# lie on top of each other and add them up. The kernel fits in 2 positions across and 2 down,
# so the output is 2x2:
#
# ```
# out[0, 0] = 1*1 + 2*2 + 4*3 + 5*4 = 1 + 4 + 12 + 20 = 37
# out[0, 1] = 2*1 + 3*2 + 5*3 + 6*4 = 2 + 6 + 15 + 24 = 47
# out[1, 0] = 4*1 + 5*2 + 7*3 + 8*4 = 4 + 10 + 21 + 32 = 67
# out[1, 1] = 5*1 + 6*2 + 8*3 + 9*4 = 5 + 12 + 24 + 36 = 77
# ```
#
# In symbols, for one channel and stride 1:
# `out[i, j] = b + sum over p, q of  w[p, q] * x[i + p, j + q]`.
#
# (Strictly, this is *cross-correlation*: a mathematician's convolution would flip the kernel
# first. Caffe, PyTorch and every CNN paper call the unflipped version "convolution", and so
# do we. For learned kernels the difference does not matter: the net simply learns the
# flipped kernel.)
#
# Now let the library check our arithmetic. It wants 4-D arrays, so the 3x3 image becomes
# `x: (N=1, C=1, H=3, W=3)` and the kernel `w: (F=1, C=1, KH=2, KW=2)`.

# %%
x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
w = np.array([[1, 2], [3, 4]], dtype=np.float64).reshape(1, 1, 2, 2)
b = np.zeros(1)

out, _ = conv_forward_naive(x, w, b)
print("out shape:", out.shape)  # (N, F, OH, OW) = (1, 1, 2, 2)
print(out[0, 0])
assert np.array_equal(out[0, 0], [[37, 47], [67, 77]])

# %% [markdown]
# The figure draws the four positions of the kernel and the sum each one produces.
# (Drawing code; skip it on a first reading.)

# %%
WINDOW_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]




def highlight(ax, row, col, height, width, color, inset=0.0, dashed=False):
    ax.add_patch(Rectangle((col + inset, row + inset), width - 2 * inset, height - 2 * inset, fill=False,
                           edgecolor=color, linewidth=3, linestyle="--" if dashed else "-"))


fig = Figure(layout="constrained", figsize=(12, 3.6))
axes = fig.subplots(1, 5, gridspec_kw={"width_ratios": [3, 3, 3, 3, 2.2]})
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    window = x[0, 0, i : i + 2, j : j + 2]
    terms = " + ".join(f"{a:g}*{k_:g}" for a, k_ in zip(window.ravel(), w[0, 0].ravel()))
    draw_number_grid(axes[k], x[0, 0], f"out[{i}, {j}] = {out[0, 0, i, j]:g}")
    # the sum goes under the grid, so that the titles stay one line and clear of the suptitle
    axes[k].text(1.5, 3.15, f"{terms}\n= {out[0, 0, i, j]:g}", ha="center", va="top", fontsize=9)
    axes[k].set_ylim(3.9, -0.1)
    highlight(axes[k], i, j, 2, 2, WINDOW_COLORS[k])
draw_number_grid(axes[4], out[0, 0], "out (2x2)")
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    highlight(axes[4], i, j, 1, 1, WINDOW_COLORS[k], inset=0.05)
fig.suptitle("A 2x2 kernel [[1, 2], [3, 4]] slides over a 3x3 input: four windows, four outputs")
_tutorial.save(fig, OUT / "conv_by_hand.png")

# %% [markdown]
# **Channels and filters.** A colour image has C = 3 channels. A filter then has one 2-D
# kernel *per input channel*, and its output is the sum over all channels: the filter sees the
# whole depth of the input at once. With F filters you get F output channels. Here is the
# same input repeated in two channels (the second multiplied by 10) with one filter whose
# second kernel is all ones. Channel 1 adds the plain window sum times 10, e.g.
# out[0, 0] = 37 + 10 * (1 + 2 + 4 + 5) = 37 + 120 = 157.

# %%
x2 = np.concatenate([x, 10 * x], axis=1)                    # (1, 2, 3, 3)
w2 = np.concatenate([w, np.ones((1, 1, 2, 2))], axis=1)     # (1, 2, 2, 2)
out2, _ = conv_forward_naive(x2, w2, b)
print(out2[0, 0])
assert out2[0, 0, 0, 0] == 157

# %% [markdown]
# ## 1.2 The naive loops
#
# Here is the library's reference implementation, printed straight from its source, so what
# you read is exactly what runs:

# %%
print(inspect.getsource(conv_forward_naive))

# %% [markdown]
# Read the loop body with the formula in mind:
#
# * `xp` is the input padded with `pad` zeros on every side (padding lets the kernel sit on
#   border pixels; `pad=0` leaves the input alone).
# * For every image `n`, filter `f` and output pixel `(i, j)`, the window starts at row
#   `i * stride`, column `j * stride`, and spans `KH x KW` pixels **in all C channels**.
# * `np.sum(window * w[f])` is the multiply-and-add you did by hand, over `C * KH * KW`
#   products at once.
#
# The loops make `N * F * OH * OW` trips through Python. Each trip costs microseconds, which
# is fine for a 3x3 image and hopeless for a photo: we will measure it in section 1.5.
#
# Stride and padding use the same loop. With `pad=1` the 3x3 input becomes 5x5 (a ring of
# zeros) and the output grows to 4x4; with `stride=2` the window jumps two pixels at a time.

# %%
print("pad=1:\n", conv_forward_naive(x, w, b, pad=1)[0][0, 0])
print("stride=2 on a 5x5 input:\n",
      conv_forward_naive(np.arange(25.0).reshape(1, 1, 5, 5), w, b, stride=2)[0][0, 0])

# %% [markdown]
# ## 1.3 im2col: a convolution is a matrix multiply
#
# Look again at the four windows of section 1.1. Each is 4 numbers. Write each window as a
# **column**, side by side: a 4x4 matrix `cols`, one column per output pixel. Flatten the kernel
# into a row `[1, 2, 3, 4]`. Then *one* matrix product does all four multiply-and-adds:
#
# ```
#                       cols
#                   1   2   4   5
# [1 2 3 4]   @     2   3   5   6     =   [37  47  67  77]
#                   4   5   7   8
#                   5   6   8   9
# ```
#
# The first column is the blue window (1, 2, 4, 5), and `1*1 + 2*2 + 3*4 + 4*5 = 37`, exactly
# `out[0, 0]`. This reshaping is called **im2col** ("image to columns").

# %%
fig = Figure(layout="constrained", figsize=(11, 3.6))
ax_in, ax_cols, ax_out = fig.subplots(1, 3, gridspec_kw={"width_ratios": [3, 4.6, 4.6]})
draw_number_grid(ax_in, x[0, 0], "input x (3x3) and its four 2x2 windows")
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    highlight(ax_in, i, j, 2, 2, WINDOW_COLORS[k], inset=0.04 + 0.06 * k)

cols = im2col(x, 2, 2)  # (C*KH*KW, N*OH*OW) = (4, 4)
draw_number_grid(ax_cols, cols, "cols = im2col(x, 2, 2): one window per column\n"
          "rows: kernel offset (p, q); columns: output pixel (i, j)")
for k in range(4):
    highlight(ax_cols, 0, k, 4, 1, WINDOW_COLORS[k], inset=0.06)
for r, (p, q) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    ax_cols.text(-0.15, r + 0.5, f"({p},{q})", ha="right", va="center", fontsize=9)
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    ax_cols.text(k + 0.5, 4.35, f"({i},{j})", ha="center", va="center", fontsize=9, color=WINDOW_COLORS[k])
ax_cols.set_xlim(-1.1, 4.1)
ax_cols.set_ylim(4.6, -0.1)

row = w.reshape(1, -1) @ cols  # (F, N*OH*OW)
draw_number_grid(ax_out, np.vstack([w.reshape(1, -1), row]),
          "top: kernel as a row w.reshape(F, -1)\nbottom: row @ cols = out, flattened")
for k in range(4):
    highlight(ax_out, 1, k, 1, 1, WINDOW_COLORS[k], inset=0.06)
fig.suptitle("im2col: copy every window into a column, then the convolution is one matrix product")
_tutorial.save(fig, OUT / "im2col.png")

# %% [markdown]
# Now the real code. `im2col` returns `cols: (C*KH*KW, N*OH*OW)`: row `c*KH*KW + p*KW + q` holds
# kernel offset `(p, q)` of channel `c`, the same order as `w.reshape(F, -1)`, so the two line up.

# %%
print(cols)
print("w_row @ cols =", row)
assert np.array_equal(row.reshape(2, 2), out[0, 0])

# %% [markdown]
# How does `im2col` collect the windows without a Python loop? It asks NumPy for a
# *view* of the padded input, `sliding_window_view`, in which element `[n, c, i, j, p, q]` is
# `xp[n, c, i*stride + p, j*stride + q]`. A view copies nothing; it only tells NumPy how to
# step through memory. One `reshape` then copies the windows into the matrix. `conv_forward`
# is im2col plus one `@`:

# %%
print(inspect.getsource(im2col))
print(inspect.getsource(conv_forward))

# %% [markdown]
# The price of im2col is memory: each input pixel is copied once for every window that
# contains it, up to `KH * KW` times. For a 3x3 kernel `cols` is about 9 times bigger than the
# input. The reward is speed: matrix multiply is the most optimized routine in numerical
# computing (BLAS), and we call it once instead of looping `N * F * OH * OW` times in Python.

# %% [markdown]
# ## 1.4 How big is the output?
#
# Along one axis, a window of `k` pixels moving by `stride` over an input of `size` pixels
# padded by `pad` on both sides fits
#
# ```
# OH = (size + 2*pad - k) // stride + 1        (floor mode: convolution, PyTorch pooling)
# ```
#
# positions: `size + 2*pad - k` is how far the window can travel, `// stride` how many steps
# it takes, and `+ 1` counts the starting position. For section 1.1: (3 + 0 - 2) // 1 + 1 = 2.
# Integer division `//` matters: `/` would give a float and break every shape that uses it.
#
# Caffe, where the MTCNN models were trained, rounds **up** when it pools:
#
# ```
# OH = ceil((size + 2*pad - k) / stride) + 1   (ceil mode: Caffe pooling)
# ```
#
# When the steps do not divide evenly, ceil mode adds one more window that hangs over the
# bottom/right edge and pools only the pixels that are inside. One function,
# `conv_output_size(size, k, stride, pad, ceil=False)`, does both.

# %%
examples = [
    # (what, size, k, stride, pad, ceil)
    ("section 1.1: 3x3 input, 2x2 kernel", 3, 2, 1, 0, False),
    ("same with pad=1", 3, 2, 1, 1, False),
    ("P-Net conv1: 12 -> 3x3 conv", 12, 3, 1, 0, False),
    ("P-Net pool1: 10 -> 2x2/2, floor", 10, 2, 2, 0, False),
    ("P-Net pool1: 10 -> 2x2/2, ceil", 10, 2, 2, 0, True),
    ("R-Net pool1: 22 -> 3x3/2, floor", 22, 3, 2, 0, False),
    ("R-Net pool1: 22 -> 3x3/2, ceil", 22, 3, 2, 0, True),
]
for what, size, k, stride, pad, ceil in examples:
    print(f"{what:38s} -> {conv_output_size(size, k, stride, pad, ceil=ceil)}")

# %% [markdown]
# * **P-Net's pool**, 2x2 with stride 2 on a 10x10 map: (10 - 2) / 2 = 4 exactly, so both
#   modes give 4 + 1 = **5**.
# * **R-Net's pool**, 3x3 with stride 2 on a 22x22 map: (22 - 3) / 2 = 9.5. Floor mode gives
#   9 + 1 = **10** and drops the last row and column; ceil mode gives 10 + 1 = **11**, the last
#   window covering rows 20, 21 and one row that does not exist.
#
# The figure shows the windows along one axis of length 22.

# %%
size, k, stride = 22, 3, 2
fig = Figure(layout="constrained", figsize=(11, 3.4))
axes = fig.subplots(2, 1, sharex=True)
for ax, ceil in zip(axes, (False, True)):
    n_windows = conv_output_size(size, k, stride, ceil=ceil)
    for c in range(size):
        ax.add_patch(Rectangle((c, 0), 1, 1, facecolor="0.92", edgecolor="0.6"))
        ax.text(c + 0.5, 0.5, str(c), ha="center", va="center", fontsize=8)
    for i in range(n_windows):
        start = i * stride
        overhang = start + k > size
        ax.add_patch(Rectangle((start + 0.08, 1.2 + 0.45 * (i % 2)), k - 0.16, 0.35,
                               facecolor="tab:red" if overhang else "tab:blue", alpha=0.7))
    ax.set_xlim(-0.5, size + 1.5)
    ax.set_ylim(-0.2, 2.2)
    ax.axis("off")
    mode = "ceil (Caffe)" if ceil else "floor"
    ax.set_title(f"{mode}: {n_windows} windows of 3 at stride 2 over 22 cells"
                 + ("; the red one hangs over the edge" if ceil else "; cell 21 is never pooled"), fontsize=10)
fig.suptitle("Ceil mode adds a last window that overhangs the edge")
_tutorial.save(fig, OUT / "ceil_mode.png")

# %% [markdown]
# Does this matter? Yes: R-Net flattens its last map into a fully connected layer of
# 64 * 3 * 3 = 576 inputs. The library's `maxpool_forward` takes `ceil_mode`, and only ceil
# mode reproduces the shapes the released weights expect:

# %%
feature_map = np.random.default_rng(0).standard_normal((1, 28, 22, 22))  # R-Net after conv1
for ceil in (False, True):
    pooled, _ = maxpool_forward(feature_map, size=3, stride=2, ceil_mode=ceil)
    print(f"ceil_mode={ceil!s:5}: (1, 28, 22, 22) -> {pooled.shape}")

# %% [markdown]
# Every net has a `summary()` that runs one forward pass and prints each layer's output shape,
# so you can follow these formulas through a whole net. P-Net turns a 12x12 input into a
# single 1x1 cell; R-Net ends with the 3x3 map that becomes 576 features.

# %%
print(PNet().summary())
print()
print(RNet().summary())

# %% [markdown]
# The window must fit at least once; if it does not, `conv_output_size` says so instead of
# returning a nonsense size:

# %%
try:
    conv_output_size(2, 3)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 1.5 Naive against fast, on a P-Net layer
#
# P-Net's first layer has 10 filters of 3x3 over the 3 colour channels:
# `w: (10, 3, 3, 3)`. We run it on a 96x96 image (a pyramid level of a small photo), so
# `out: (1, 10, 94, 94)` and the naive version makes 10 * 94 * 94 = 88,360 trips through its
# loop. Both versions must agree to rounding error; we check in float64, where "rounding
# error" means about 1e-12, and in float32, the precision the detector runs in.

# %%
rng = np.random.default_rng(1)
x_big = rng.standard_normal((1, 3, 96, 96))
w_big = rng.standard_normal((10, 3, 3, 3))
b_big = rng.standard_normal(10)

out_naive, _ = conv_forward_naive(x_big, w_big, b_big)
out_fast, _ = conv_forward(x_big, w_big, b_big)
print("output shape:", out_fast.shape)
print(f"float64: max |naive - fast| = {np.abs(out_naive - out_fast).max():.2e}")
assert np.allclose(out_naive, out_fast, rtol=0, atol=1e-12)

x32, w32, b32 = x_big.astype(np.float32), w_big.astype(np.float32), b_big.astype(np.float32)
diff32 = np.abs(conv_forward_naive(x32, w32, b32)[0] - conv_forward(x32, w32, b32)[0]).max()
print(f"float32: max |naive - fast| = {diff32:.2e}  (float32 keeps ~7 digits)")
assert diff32 < 1e-4

# %%
repeats_naive, repeats_fast = (1, 5) if QUICK else (3, 50)
t_naive = _tutorial.best_time(lambda: conv_forward_naive(x_big, w_big, b_big), repeats_naive)
t_fast = _tutorial.best_time(lambda: conv_forward(x_big, w_big, b_big), repeats_fast)
print(f"naive loops : {1000 * t_naive:8.1f} ms")
print(f"im2col + @  : {1000 * t_fast:8.2f} ms")
print(f"speed-up    : {t_naive / t_fast:8.0f}x")
print(f"On this machine the fast version was {t_naive / t_fast:,.0f} times faster, with the same numbers.")

fig = Figure(layout="constrained", figsize=(6, 2.6))
ax = fig.subplots()
ax.barh(["im2col + matmul\n(conv_forward)", "naive loops\n(conv_forward_naive)"], [1000 * t_fast, 1000 * t_naive],
        color=["tab:green", "tab:gray"])
ax.set_xscale("log")
ax.set_xlim(left=1000 * t_fast / 10, right=1000 * t_naive * 3)  # a log axis has no zero: start well left
for y, t in enumerate((t_fast, t_naive)):
    ax.text(1000 * t * 1.1, y, f"{1000 * t:.1f} ms", va="center")
ax.set_xlabel("milliseconds (log scale), best of several runs")
ax.set_title(f"P-Net conv1 on a 96x96 image: {t_naive / t_fast:.0f}x faster, same numbers")
_tutorial.save(fig, OUT / "timing.png")

# %% [markdown]
# The last line printed above is the measured speed-up on your machine; the factor depends on
# the machine, its BLAS library and whatever else is running, so we print it rather than
# quote one. Either way the two give the same numbers. That is the
# pattern of the whole project: a naive twin that is obviously right, a fast version that is
# used, and a test (`tests/test_conv.py`) that they agree.

# %% [markdown]
# ## Exercises
#
# 1. **Padding by hand.** Compute the 4x4 output of section 1.1's input and kernel with
#    `pad=1` on paper, then check it with `conv_forward_naive(x, w, b, pad=1)`.
#    *Hint:* surround the 3x3 input with a ring of zeros; the top-left output then sees only
#    the input's `1`, multiplied by the kernel's bottom-right `4`.
# 2. **Shapes without running anything.** What is `out.shape` for `x: (8, 3, 48, 48)`,
#    `w: (32, 3, 3, 3)`, `stride=1, pad=0` (O-Net's conv1)? And after its 3x3/2 ceil-mode pool?
#    *Hint:* `conv_output_size(48, 3)`, then `conv_output_size(46, 3, 2, ceil=True)`; batch and
#    filters pass straight through to `(N, F, ...)`.
# 3. **When does ceil mode matter?** For which sizes H does a 3x3/2 pool give different output
#    sizes in floor and ceil mode? List H from 3 to 30 and compare.
#    *Hint:* the two formulas differ exactly when `(H - 3) / 2` is not a whole number.
# 4. **The cost of im2col.** How many numbers does `cols` hold for P-Net's conv1 on a
#    640x480 image, compared with the image itself? *Hint:* `cols` has shape
#    `(C*KH*KW, N*OH*OW)`; with C=3, KH=KW=3 that is about 9 times the image.
# 5. **A third way to convolve.** Instead of looping over output pixels (naive) or building
#    `cols` (im2col), loop over the `KH*KW` kernel offsets and add shifted slices:
#    `out += np.einsum("fc,nchw->nfhw", w[:, :, p, q], x[:, :, p:p+OH, q:q+OW])`. Write it for
#    stride 1 and check it against `conv_forward`. *Hint:* start from `out` filled with the bias
#    `b[None, :, None, None]`; only 9 trips through the loop for a 3x3 kernel.
# 6. **Timing shape.** Double the image side in section 1.5 (192x192). By how much does each
#    version slow down, and why roughly the same factor? *Hint:* both do work proportional to
#    `OH * OW`; the naive one pays a fixed Python overhead per output pixel.
