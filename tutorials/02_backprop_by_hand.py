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
# # 2. Backpropagation by hand
#
# Training a net means nudging every weight in the direction that lowers the loss, so we need
# the gradient of the loss with respect to every weight. Backpropagation computes all of them
# with the chain rule, one layer at a time, from the loss back to the input. In this tutorial
# you will
#
# 1. work out, on paper, the backward pass of each layer MTCNN uses: convolution, PReLU,
#    ceil-mode max pooling and softmax cross-entropy, and check each against the library;
# 2. chain them through a tiny net by hand, then let the module layer do it;
# 3. check gradients numerically with `layers.gradcheck` (`check_op`, `check_loss`,
#    `check_module`);
# 4. see what a *failing* check looks like, on a deliberately broken PReLU backward.
#
# **The contract.** Every layer is a pair of functions (see `layers/__init__.py`):
#
# ```
# out, cache = NAME_forward(x, *params)       # remember what backward will need
# dx, *dparams = NAME_backward(dout, cache)   # one gradient per input, in argument order
# ```
#
# `dout` is dL/d`out`, handed down from the layer above; backward returns dL/d`x` (and
# dL/d`w`, ...). Every gradient has the shape of the thing it is the gradient of.
# The chain rule for one entry is just
# `dx[k] = sum over every output entry m of  dout[m] * d out[m] / d x[k]`.
# To test a backward pass on its own we pretend the loss is `L = sum(out * dout)` for some
# chosen `dout`: then dL/d`out` is exactly that `dout`.

# %%
import inspect

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import (Conv2D, Linear, MaxPool2D, PReLU, Sequential, conv_backward, conv_backward_naive, conv_forward,
                    conv_forward_naive, linear_backward, linear_forward, maxpool_backward, maxpool_forward,
                    prelu_backward, prelu_forward, softmax, softmax_backward, softmax_cross_entropy)
from layers.gradcheck import (TOLERANCE, check_loss, check_module, check_op, format_report, numerical_gradient,
                              relative_error)
from pipeline.plots import draw_number_grid

OUT = _tutorial.output_dir("02_backprop_by_hand")

# %% [markdown]
# ## 2.1 Convolution
#
# Take tutorial 1's example: input 1..9 as 3x3, kernel `w = [[1, 2], [3, 4]]`, output
# `[[37, 47], [67, 77]]`.
#
# **One output at a time.** Let `dout = [[1, 0], [0, 0]]`, so only `out[0, 0]` counts:
#
# ```
# L = out[0, 0] = 1*x[0,0] + 2*x[0,1] + 3*x[1,0] + 4*x[1,1] + b
# ```
#
# Reading off the derivatives:
#
# * dL/dx is the **kernel stamped onto the window** it touched: `[[1, 2, 0], [3, 4, 0], [0, 0, 0]]`;
# * dL/dw is the **window** itself: `[[1, 2], [4, 5]]`;
# * dL/db = 1.
#
# **All outputs.** With `dout = [[1, 1], [1, 1]]` every window contributes, and the chain
# rule says to *add* the four contributions. Each stamp of the kernel lands one pixel further:
#
# ```
# dx = [[1, 2, 0],   [[0, 1, 2],   [[0, 0, 0],   [[0, 0, 0],     [[1,  3, 2],
#       [3, 4, 0], +  [0, 3, 4], +  [1, 2, 0], +  [0, 1, 2],  =   [4, 10, 6],
#       [0, 0, 0]]    [0, 0, 0]]    [3, 4, 0]]    [0, 3, 4]]       [3,  7, 4]]
# ```
#
# The centre pixel lies in all four windows, so it collects all four kernel entries:
# 1 + 2 + 3 + 4 = 10. For dw, entry (p, q) adds up the pixel each window had at offset (p, q):
# dw[0,0] = 1 + 2 + 4 + 5 = 12, dw[0,1] = 2 + 3 + 5 + 6 = 16, dw[1,0] = 4 + 5 + 7 + 8 = 24,
# dw[1,1] = 5 + 6 + 8 + 9 = 28; and db = 1 + 1 + 1 + 1 = 4.

# %%
x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
w = np.array([[1, 2], [3, 4]], dtype=np.float64).reshape(1, 1, 2, 2)
b = np.zeros(1)

_, cache = conv_forward_naive(x, w, b)
dx, dw, db = conv_backward_naive(np.array([[[[1.0, 0.0], [0.0, 0.0]]]]), cache)
print("one output:  dx =\n", dx[0, 0], "\n dw =\n", dw[0, 0], "\n db =", db)
assert np.array_equal(dx[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
assert np.array_equal(dw[0, 0], [[1, 2], [4, 5]]) and db[0] == 1

dout_ones = np.ones((1, 1, 2, 2))
dx, dw, db = conv_backward_naive(dout_ones, cache)
print("all outputs: dx =\n", dx[0, 0], "\n dw =\n", dw[0, 0], "\n db =", db)
assert np.array_equal(dx[0, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])
assert np.array_equal(dw[0, 0], [[12, 16], [24, 28]]) and db[0] == 4

# the fast im2col version must give the same numbers
_, cache_fast = conv_forward(x, w, b)
for name, slow, fast in zip(("dx", "dw", "db"), (dx, dw, db), conv_backward(dout_ones, cache_fast)):
    assert np.allclose(slow, fast, rtol=0, atol=1e-12), name
print("conv_backward (im2col) agrees with the loops")

# %% [markdown]
# The naive backward (below) is the forward loop run in reverse: each output pixel sent its
# window times `w[f]` forward, so it sends `dout` times `w[f]` back to the same window. The
# `+=` is the important part: windows overlap, and **overlapping contributions add**.
# Writing `=` there is one of the classic bugs: the last window to touch a pixel would
# overwrite the others' contributions (exercise 2 hunts for it in max pooling).

# %%
print(inspect.getsource(conv_backward_naive))

# %%
# Drawing code: the four kernel stamps and their sum.


STAMP_COLORS = ["#9ecae1", "#fdae6b", "#a1d99b", "#fc9272"]
fig = Figure(layout="constrained", figsize=(12, 2.8))
axes = fig.subplots(1, 5)
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    stamp = np.zeros((3, 3))
    stamp[i : i + 2, j : j + 2] = w[0, 0]
    colors = [["white"] * 3 for _ in range(3)]
    for r in range(i, i + 2):
        for c in range(j, j + 2):
            colors[r][c] = STAMP_COLORS[k]
    draw_number_grid(axes[k], stamp, f"dout[{i}, {j}] = 1 sends\nthe kernel to window ({i}, {j})", colors)
draw_number_grid(axes[4], dx[0, 0], "dx = sum of the stamps\n(overlaps add up)")
fig.suptitle("Backward of a convolution: every output pixel stamps the kernel back onto its window")
_tutorial.save(fig, OUT / "conv_backward.png")

# %% [markdown]
# ## 2.2 PReLU
#
# PReLU passes positive inputs through and scales the rest by a learned slope `alpha`, one per
# channel: `out = x` if `x > 0`, else `alpha * x`. Its derivatives are
#
# * d out / d x = 1 where x > 0, `alpha` elsewhere;
# * d out / d alpha = 0 where x > 0, `x` elsewhere, **summed** over every position of the
#   channel (one alpha serves them all, so their contributions add, like the kernel's).
#
# With `x = [[2, -1], [0.5, -3]]`, `alpha = 0.25` and `dout = [[1, 2], [3, 4]]`:
#
# ```
# out    = [[2, -0.25], [0.5, -0.75]]
# dx     = [[1, 2*0.25], [3, 4*0.25]] = [[1, 0.5], [3, 1]]
# dalpha = 2*(-1) + 4*(-3) = -14
# ```

# %%
x_p = np.array([[2.0, -1.0], [0.5, -3.0]]).reshape(1, 1, 2, 2)  # (N, C, H, W) with C = 1
alpha = np.array([0.25])                                          # (C,)
out_p, cache_p = prelu_forward(x_p, alpha)
dx_p, dalpha = prelu_backward(np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2), cache_p)
print("out =\n", out_p[0, 0], "\ndx =\n", dx_p[0, 0], "\ndalpha =", dalpha)
assert np.array_equal(dx_p[0, 0], [[1, 0.5], [3, 1]]) and dalpha[0] == -14

# %% [markdown]
# ## 2.3 Max pooling in ceil mode
#
# A max pool passes on the largest value of each window. Only that value influenced the
# output, so the whole gradient of the window goes to the **winning position**, and every
# other position gets 0.
#
# Take `x = [[1, 9, 2], [4, 3, 8], [7, 5, 6]]` and a 2x2 pool with stride 2 in Caffe's ceil mode
# (tutorial 1): ceil((3 - 2) / 2) + 1 = 2 windows per axis, so `out` is 2x2. Three windows hang
# over the edge and pool only what is inside:
#
# ```
# window (0, 0): rows 0-1, cols 0-1: {1, 9, 4, 3} -> 9 at (0, 1)
# window (0, 1): rows 0-1, col  2  : {2, 8}       -> 8 at (1, 2)
# window (1, 0): row  2,   cols 0-1: {7, 5}       -> 7 at (2, 0)
# window (1, 1): row  2,   col  2  : {6}          -> 6 at (2, 2)
# ```
#
# so `out = [[9, 8], [7, 6]]`, and with `dout = [[1, 2], [3, 4]]`:
# `dx = [[0, 1, 0], [0, 0, 2], [3, 0, 4]]`.
# In floor mode the output would be 1x1 (just the 9): row 2 and column 2 would never reach
# the next layer, and their gradient would always be 0.

# %%
x_m = np.array([[1.0, 9, 2], [4, 3, 8], [7, 5, 6]]).reshape(1, 1, 3, 3)
out_m, cache_m = maxpool_forward(x_m, size=2, stride=2, ceil_mode=True)
dx_m = maxpool_backward(np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2), cache_m)
print("out =\n", out_m[0, 0], "\ndx =\n", dx_m[0, 0])
assert np.array_equal(out_m[0, 0], [[9, 8], [7, 6]])
assert np.array_equal(dx_m[0, 0], [[0, 1, 0], [0, 0, 2], [3, 0, 4]])
print("floor mode output:", maxpool_forward(x_m, size=2, stride=2, ceil_mode=False)[0][0, 0])

# %% [markdown]
# **Overlapping windows.** R-Net and O-Net pool 3x3 windows with stride 2, so neighbouring
# windows share a column. If the shared pixel wins both windows, it must receive *both*
# gradients. Here the 20 in the middle column wins both windows of a 3x5 input:
# `dout = [[1, 10]]` must give it 1 + 10 = 11.

# %%
x_o = np.array([[1.0, 2, 3, 4, 5], [6, 7, 20, 8, 9], [10, 11, 12, 13, 14]]).reshape(1, 1, 3, 5)
out_o, cache_o = maxpool_forward(x_o, size=3, stride=2, ceil_mode=True)
dx_o = maxpool_backward(np.array([[[[1.0, 10.0]]]]), cache_o)
print("out =", out_o[0, 0], "\ndx =\n", dx_o[0, 0])
assert dx_o[0, 0, 1, 2] == 11

# %%
fig = Figure(layout="constrained", figsize=(9, 3.2))
ax_x, ax_out, ax_dx = fig.subplots(1, 3)
win_colors = [["white"] * 3 for _ in range(3)]
for (r, c), color in zip([(0, 1), (1, 2), (2, 0), (2, 2)], STAMP_COLORS):
    win_colors[r][c] = color
draw_number_grid(ax_x, x_m[0, 0], "x, the 2x2/2 ceil-mode windows\nand each window's winner", win_colors)
for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    r0, c0 = 2 * i, 2 * j
    inset = 0.05
    ax_x.add_patch(Rectangle((c0 + inset, r0 + inset), 2 - 2 * inset, 2 - 2 * inset, fill=False,
                             edgecolor=["tab:blue", "tab:orange", "tab:green", "tab:red"][k], linewidth=2.5,
                             linestyle="-" if (i, j) == (0, 0) else "--",
                             clip_on=False))
ax_x.set_xlim(-0.1, 4.1)
ax_x.set_ylim(4.1, -0.1)
draw_number_grid(ax_out, out_m[0, 0], "out = max of each window\n(dout = [[1, 2], [3, 4]])",
          [[STAMP_COLORS[0], STAMP_COLORS[1]], [STAMP_COLORS[2], STAMP_COLORS[3]]])
draw_number_grid(ax_dx, dx_m[0, 0], "dx: each dout goes to\nits window's winner", win_colors)
fig.suptitle("Max-pool backward routes the gradient to the winners (dashed windows overhang the edge)")
_tutorial.save(fig, OUT / "maxpool_backward.png")

# %% [markdown]
# ## 2.4 Softmax cross-entropy
#
# The face/non-face head ends in a softmax over K = 2 classes,
# `p_k = exp(z_k) / sum_j exp(z_j)`, and the loss of one sample with label y is
# `-log p_y`. Chain rule, with `d p_j / d z_k = p_j * (delta_jk - p_k)`:
#
# ```
# dL/dz_k = sum_j (-delta_jy / p_y) * p_j * (delta_jk - p_k) = -(delta_yk - p_k) = p_k - onehot_k
# ```
#
# The two divisions cancel and the result is beautifully simple: **probabilities minus the
# one-hot label**. Averaged over N samples, each row is divided by N.
#
# Pick logits whose softmax is easy: `z = [ln 3, 0]` gives `p = [3/4, 1/4]`, and `z = [0, 0]`
# gives `p = [1/2, 1/2]`. With labels `[0, 1]`:
#
# ```
# loss    = (-ln(3/4) - ln(1/2)) / 2 = (0.2877 + 0.6931) / 2 = 0.4904
# dlogits = [[3/4 - 1, 1/4], [1/2, 1/2 - 1]] / 2 = [[-0.125, 0.125], [0.25, -0.25]]
# ```

# %%
logits = np.array([[np.log(3.0), 0.0], [0.0, 0.0]])  # (N, K) = (2, 2)
labels = np.array([0, 1])
loss, dlogits = softmax_cross_entropy(logits, labels)
print(f"loss = {loss:.4f}\ndlogits =\n{dlogits}")
assert abs(loss - (np.log(4 / 3) + np.log(2)) / 2) < 1e-12
assert np.allclose(dlogits, [[-0.125, 0.125], [0.25, -0.25]], rtol=0, atol=1e-12)

# %% [markdown]
# The same gradient also comes out of the long way round: softmax's own backward
# (`y * (dout - sum(dout * y))`, its Jacobian in vector form) fed with the derivative of
# `-log p_y / N`, which is `-onehot / (N * p)`. The fused version is shorter and never divides by
# a tiny probability, which is why losses compute it directly.

# %%
p = softmax(logits)
onehot = np.eye(2)[labels]
dlogits_long = softmax_backward(-onehot / (len(labels) * p), p)
assert np.allclose(dlogits_long, dlogits, rtol=0, atol=1e-12)
print("softmax_backward(-onehot / (N p), p) == p - onehot, over N")

# %% [markdown]
# ## 2.5 The chain rule through a tiny net
#
# Now chain the pieces: `x -> conv -> PReLU -> max pool (ceil) -> linear -> softmax
# cross-entropy`. Forward, each layer keeps its cache; backward walks the same list in reverse,
# each layer turning the `dout` it receives into the `dout` of the layer below. That is all of
# backpropagation:

# %%
rng = np.random.default_rng(0)
N, C, H, W, F = 2, 1, 5, 5, 2
x_net = rng.standard_normal((N, C, H, W))
w1, b1 = rng.standard_normal((F, C, 3, 3)), rng.standard_normal(F)
alpha1 = np.full(F, 0.25)
w2, b2 = rng.standard_normal((F * 2 * 2, 2)), rng.standard_normal(2)
y_net = np.array([1, 0])

# forward: (2,1,5,5) -conv-> (2,2,3,3) -prelu-> (2,2,3,3) -pool ceil-> (2,2,2,2) -linear-> (2,2)
a1, c1 = conv_forward(x_net, w1, b1)
a2, c2 = prelu_forward(a1, alpha1)
a3, c3 = maxpool_forward(a2, size=2, stride=2, ceil_mode=True)
z, c4 = linear_forward(a3, w2, b2)
loss, dz = softmax_cross_entropy(z, y_net)
# backward: the same layers in reverse order
da3, dw2, db2 = linear_backward(dz, c4)
da2 = maxpool_backward(da3, c3)
da1, dalpha1 = prelu_backward(da2, c2)
dx_net, dw1, db1 = conv_backward(da1, c1)
print(f"loss = {loss:.4f}")
for name, g in [("dx", dx_net), ("dw1", dw1), ("db1", db1), ("dalpha1", dalpha1), ("dw2", dw2), ("db2", db2)]:
    print(f"{name:8s} shape {str(g.shape):14s}")

# %% [markdown]
# Notice the 3x3 map pooled by 2x2/2 in ceil mode becomes 2x2: the second window on each axis
# overhangs the edge and pools a single row or column. In floor mode it would be 1x1, and the
# linear layer's input size would change from 8 to 2.
#
# The module layer (`Conv2D`, `PReLU`, `MaxPool2D`, `Linear` in a `Sequential`) does exactly
# the same bookkeeping for you: `forward` keeps each layer's cache, `backward` walks the layers
# in reverse and stores each parameter's gradient in `param.grad`. Give it the same weights
# and it must produce the same gradients:

# %%
def tiny_net():
    """Conv2D(1->2, 3x3) -> PReLU -> MaxPool2D(2, 2, ceil) -> Linear(8 -> 2), in float64."""
    return Sequential([
        ("conv1", Conv2D(C, F, 3, dtype=np.float64)),
        ("prelu1", PReLU(F, dtype=np.float64)),
        ("pool1", MaxPool2D(2, 2, ceil_mode=True)),
        ("fc", Linear(F * 2 * 2, 2, dtype=np.float64)),
    ])


net = tiny_net()
net.load_state_dict({"conv1.w": w1, "conv1.b": b1, "prelu1.alpha": alpha1, "fc.w": w2, "fc.b": b2})
loss_module, dz_module = softmax_cross_entropy(net.forward(x_net), y_net)
dx_module = net.backward(dz_module)
assert abs(loss_module - loss) < 1e-12 and np.allclose(dx_module, dx_net, rtol=0, atol=1e-12)
assert np.allclose(net["conv1"].params["w"].grad, dw1, rtol=0, atol=1e-12)
assert np.allclose(net["prelu1"].params["alpha"].grad, dalpha1, rtol=0, atol=1e-12)
print("Sequential.backward == the hand-chained functions")

# %% [markdown]
# ## 2.6 Gradient checking
#
# Hand derivations are easy to get subtly wrong, so every backward pass in the project is
# checked against plain **numerical differentiation**. For a tiny step h,
#
# ```
# dL/dx[k]  ~  (L(x + h e_k) - L(x - h e_k)) / (2h)
# ```
#
# (the *central* difference: its error shrinks like h^2, not h). Let us do one entry by hand:
# in section 2.1, with `dout` all ones, the centre pixel's gradient was 10.

# %%
h = 1e-6


def L_of(x_in):
    """L = sum(out * dout) for the 3x3 example with dout = ones."""
    return float(np.sum(conv_forward(x_in, w, b)[0] * dout_ones))


x_plus, x_minus = x.copy(), x.copy()
x_plus[0, 0, 1, 1] += h
x_minus[0, 0, 1, 1] -= h
numeric = (L_of(x_plus) - L_of(x_minus)) / (2 * h)
print(f"numeric dL/dx[1, 1] = {numeric:.8f}   (by hand: 10)")

# %% [markdown]
# `layers.gradcheck` does this for every entry, with the rules that make the comparison
# trustworthy (its module docstring gives each with its reason; CS231n's and Chainer's gradient
# checkers follow the same rules):
#
# * **float64 only.** float32 keeps ~7 digits; subtracting two nearly equal losses and
#   dividing by 2e-6 would leave almost none.
# * **Relative error** `|a - b| / max(eps, |a| + |b|)`: a gradient of 1000 may be off by 1e-6,
#   a gradient of 1e-3 may not. A correct backward scores at the level of rounding noise
#   (1e-6 or much smaller, below); a wrong one around 1e-1. The tolerance sits between.
# * **Off kinks and ties.** PReLU has a kink at 0 and max pooling a jump where two values tie;
#   there the function has no derivative, and the check would fail for no fault of the code.
#   We keep PReLU inputs away from 0, and use a shuffled, spread-out `arange` for pooling so no
#   two values are close.
#
# `check_op(name, forward, backward, inputs)` checks a layer pair, `check_loss` a loss, and
# `check_module` a whole module: its input and every parameter.

# %%
print("tolerance:", TOLERANCE)
rng = np.random.default_rng(1)
results = []
results += check_op("conv", conv_forward, conv_backward,
                    {"x": rng.standard_normal((2, 3, 5, 5)), "w": rng.standard_normal((4, 3, 3, 3)),
                     "b": rng.standard_normal(4)}, hyper={"stride": 2, "pad": 1})
x_off_kink = rng.uniform(0.1, 1.0, (2, 3, 4, 4)) * rng.choice([-1, 1], (2, 3, 4, 4))  # |x| >= 0.1
results += check_op("prelu", prelu_forward, prelu_backward, {"x": x_off_kink, "alpha": rng.uniform(0.1, 0.5, 3)})
x_no_ties = rng.permutation(2 * 3 * 5 * 5).reshape(2, 3, 5, 5) / 10.0  # distinct, 0.1 apart
results += check_op("maxpool 3x3/2 ceil", maxpool_forward, maxpool_backward, {"x": x_no_ties},
                    hyper={"size": 3, "stride": 2, "ceil_mode": True})
results += check_loss("softmax_cross_entropy", softmax_cross_entropy, rng.standard_normal((4, 2)),
                      np.array([0, 1, 1, 0]))
net = tiny_net()  # fresh random weights, already float64 (otherwise: net.astype(np.float64))
results += check_module("tiny net", net, rng.standard_normal((3, 1, 5, 5)),
                        loss_fn=lambda out: softmax_cross_entropy(out, np.array([0, 1, 1])))
print(format_report(results))
assert all(r.passed for r in results)

# %% [markdown]
# Every line ends in `ok`. The *full* check above perturbs every entry one at a time, two
# forward passes each. For a real net that is too slow, so there is also a **direction**
# check (`full=False`): perturb *all* entries at once along one random unit vector v and
# compare the numeric slope `(L(x + hv) - L(x - hv)) / 2h` with `sum(dx * v)`. One pair of
# forward passes, and a wrong gradient would have to be wrong exactly perpendicular to a
# random direction to slip through.

# %%
big = check_op("conv (direction)", conv_forward, conv_backward,
               {"x": rng.standard_normal((4, 3, 24, 24)), "w": rng.standard_normal((8, 3, 3, 3)),
                "b": rng.standard_normal(8)}, full=False)
print(format_report(big))
assert all(r.passed for r in big)

# %% [markdown]
# ## 2.7 What a failing check looks like
#
# Here is a PReLU backward with a realistic bug: it forgets that the slope on the negative
# side is `alpha`, not 1, and passes `dout` straight through everywhere.

# %%
def prelu_backward_forgets_alpha(dout, cache):
    """BROKEN on purpose: dx should be alpha * dout where x <= 0."""
    x, alpha = cache
    dx = dout.copy()                            # the bug: treats every input as positive
    _, dalpha = prelu_backward(dout, cache)    # dalpha is right
    return dx, dalpha


buggy = check_op("prelu (buggy)", prelu_forward, prelu_backward_forgets_alpha,
                 {"x": x_off_kink, "alpha": np.full(3, 0.25)})
print(format_report(buggy))
assert not buggy[0].passed and buggy[1].passed

# %% [markdown]
# How to read the report:
#
# * `d/dx ... FAILED` names the op and the input whose gradient is wrong; `d/dalpha ... ok`
#   tells you the other half of the backward is fine, which already narrows the search.
# * The **index** is the entry with the worst error. Look it up: `x` is negative there.
# * **analytic vs numeric**: the analytic value is exactly 4 times the numeric one, i.e.
#   1 / alpha with alpha = 0.25: the code used slope 1 where the true slope is alpha. The
#   relative error (1 - 0.25) / (1 + 0.25) = 0.6 is nowhere near rounding noise.
# * The **seed** lets anyone rerun the identical check.
#
# The figure shows the relative error of every entry of dx for the correct and the broken
# backward. The correct one stays in the rounding noise, far below the tolerance; the broken
# one is just as good on positive inputs and wrong on every negative one.

# %%
def per_entry_errors(backward):
    """Relative error of each dx entry, for L = sum(out * dout) with a fixed random dout."""
    x_check = x_off_kink.copy()
    a = np.full(3, 0.25)
    dout = np.random.default_rng(0).standard_normal(x_check.shape)
    dx_analytic = backward(dout, prelu_forward(x_check, a)[1])[0]
    dx_numeric = numerical_gradient(lambda: float(np.sum(prelu_forward(x_check, a)[0] * dout)), x_check)
    return relative_error(dx_analytic, dx_numeric).ravel()


fig = Figure(layout="constrained", figsize=(11, 3.4))
ax = fig.subplots()
negative = (x_off_kink <= 0).ravel()
index = np.arange(negative.size)
good = np.maximum(per_entry_errors(prelu_backward), 1e-16)  # log scale cannot show an exact 0
bad = np.maximum(per_entry_errors(prelu_backward_forgets_alpha), 1e-16)
ax.scatter(index, good, marker="o", s=16, color="tab:blue", label="correct prelu_backward (all entries)")
ax.scatter(index[~negative], bad[~negative], marker="x", s=16, color="tab:green",
           label="broken backward, entries with x > 0")
ax.scatter(index[negative], bad[negative], marker="x", s=16, color="tab:red",
           label="broken backward, entries with x <= 0")
ax.axhline(TOLERANCE, color="k", linestyle="--", linewidth=1, label=f"tolerance {TOLERANCE:g}")
ax.set_yscale("log")
ax.set_xlabel("entry of dx (flattened)")
ax.set_ylabel("relative error")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes: hides no point
ax.set_title("Gradient check of PReLU: a correct backward vs one that forgets alpha")
_tutorial.save(fig, OUT / "gradcheck_errors.png")

# %% [markdown]
# ## Exercises
#
# 1. **Stride by hand.** Take a 4x4 input `arange(16)`, a 2x2 kernel of ones and `stride=2`.
#    Compute dx for `dout = [[1, 2], [3, 4]]` on paper; check with `conv_backward_naive`.
#    *Hint:* with stride 2 the four windows do not overlap, so dx is four constant 2x2 blocks.
# 2. **The assignment bug.** Copy `maxpool_backward_naive` from `layers/pool.py` into the
#    notebook as `my_maxpool_backward`, change its `+=` to `=`, and find an input for which
#    `check_op` catches it. Pair it with **`maxpool_forward_naive`**, not `maxpool_forward`:
#    a backward can only read the cache of its own forward, and the two caches differ:
#
#    ```
#    maxpool_forward_naive -> cache (x, argmax, size, stride)
#        argmax: (N, C, OH, OW, 2) int, the (row, col) in x of each window's first maximum
#    maxpool_forward       -> a different cache, laid out for maxpool_backward's fast
#                             kernel (no (row, col) pairs); its docstring in layers/pool.py
#                             says what it holds
#    ```
#
#    so `check_op("maxpool", maxpool_forward_naive, my_maxpool_backward, {"x": x},
#    hyper={"size": 3, "stride": 2, "ceil_mode": True})`.
#    *Hint:* you need two windows that pick the same pixel: stride smaller than the window
#    (3x3/2) and the maximum in the shared column, as in section 2.3's 3x5 example.
# 3. **A kink.** Run the PReLU check with one input exactly 0. What numeric gradient does the
#    report show, and why is the check right to complain? *Hint:* the central difference
#    averages the slopes on either side of the kink: (1 + alpha) / 2.
# 4. **Why float64.** Repeat the one-entry numeric gradient of section 2.6 with `x` and `w` in
#    float32 (and `h = 1e-6`). How many correct digits are left? Try `h = 1e-2`.
#    *Hint:* `np.float32(45) + np.float32(1e-6) == np.float32(45)` is True: the step vanishes.
# 5. **Softmax's gradient sums to zero.** Show that each row of `dlogits` sums to 0, and
#    explain why adding the same constant to all logits of a sample leaves the loss unchanged.
#    *Hint:* `sum_k (p_k - onehot_k) = 1 - 1`; moving along (1, 1, ..., 1) cannot change L.
# 6. **ReLU.** Check `relu_forward`/`relu_backward` with `check_op`, and verify that
#    `prelu_forward(x, alpha=0)` equals ReLU. *Hint:* keep inputs away from 0 as in 2.6.
