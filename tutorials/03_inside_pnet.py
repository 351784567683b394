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
# # 3. Inside P-Net
#
# P-Net is the first and smallest net of MTCNN: 6,632 parameters, no fully connected layer.
# It looks at every 12 x 12 window of an image, 2 pixels apart, and says "face or not" for
# each. In this tutorial you will
#
# 1. derive **why** the window is 12 x 12 and the step 2 pixels, layer by layer, with the
#    receptive-field recurrences, and then verify it empirically with backprop;
# 2. look at the **learned filters** of the released model and at its **feature maps** on a
#    real face;
# 3. see why a **fully convolutional** net can scan a whole image in one pass: each cell of its
#    output map is exactly what the net says about one 12 x 12 crop.
#
# The example photo is scikit-image's astronaut: `python -m pip install scikit-image` if you do
# not have it (the detector itself does not need it).

# %%
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import Conv2D, MaxPool2D, softmax
from nets import pretrained_mtcnn
from pipeline.data.images import to_chw_float
from pipeline.detection.mtcnn import MTCNNDetector
from pipeline.plots import feature_maps, plot_feature_maps, plot_filters, plot_receptive_fields
from pipeline.detection.proposals import normalize
from pipeline.detection.pyramid import scaled_size
from pipeline.detection.resize import resize_area

OUT = _tutorial.output_dir("03_inside_pnet")
pnet, _, _ = pretrained_mtcnn()      # the released weights, in eval mode
print(pnet.summary())

# %% [markdown]
# ## 3.1 The receptive field, layer by layer
#
# The **receptive field** r of a cell is the size of the input window that can influence it.
# The **jump** j is how far apart, in input pixels, neighbouring cells' windows are. Start at
# the image, where each "cell" is one pixel: r = 1, j = 1. A layer with kernel k and stride s
# then gives
#
# ```
# r_l = r_{l-1} + (k - 1) * j_{l-1}     a k-wide kernel spans k cells of the layer below,
#                                       i.e. k - 1 extra jumps of j_{l-1} pixels
# j_l = j_{l-1} * s                     strides multiply
# ```
#
# P-Net's layers (PReLU is per pixel and changes nothing):
#
# | layer | k | s | r = r + (k-1) j | j = j s |
# |---|---|---|---|---|
# | input | | | 1 | 1 |
# | conv1 3x3 | 3 | 1 | 1 + 2*1 = **3** | 1 |
# | pool1 2x2/2 | 2 | 2 | 3 + 1*1 = **4** | 2 |
# | conv2 3x3 | 3 | 1 | 4 + 2*2 = **8** | 2 |
# | conv3 3x3 | 3 | 1 | 8 + 2*2 = **12** | 2 |
# | face/box heads 1x1 | 1 | 1 | 12 + 0 = **12** | 2 |
#
# After the pool, every step of conv2 and conv3 moves 2 input pixels, so their 3x3 kernels add
# 2 * 2 = 4 pixels each. Result: **receptive field 12, stride 2**, the numbers the detector uses
# to turn output cells into boxes (`pipeline.detection.proposals.CELL_SIZE` and `STRIDE`).
#
# A third recurrence gives where the window of the first cell is centred. With padding p
# (none in P-Net) and starting from c = 0.5, the centre of pixel 0, which covers [0, 1):
#
# ```
# c_l = c_{l-1} + ((k - 1) / 2 - p) * j_{l-1}
# ```
#
# and cell i's window is centred at c_l + i * j_l. For P-Net: 0.5 + 1 + 0.5 + 2 + 2 = 6, the
# middle of the window [0, 12). (Tutorial 5 uses this offset. The same centre relation is the
# basis of SPPNet's box mapping: He, Zhang, Ren, Sun, ECCV 2014 / TPAMI 2015, Appendix A.)
#
# The same recurrences give R-Net and O-Net (valid convolutions, released models):
#
# | net | per layer (r, j) | last conv |
# |---|---|---|
# | R-Net | conv3 (3, 1), pool3/2 (5, 2), conv3 (9, 2), pool3/2 (13, 4), conv2 (17, 4) | 3 x 3 cells of 17 px |
# | O-Net | conv3 (3, 1), pool3/2 (5, 2), conv3 (9, 2), pool3/2 (13, 4), conv3 (21, 4), pool2/2 (25, 8), conv2 (33, 8) | 3 x 3 cells of 33 px |
#
# Caffe's ceil-mode pooling adds a partial window at the bottom/right border; it changes only
# the edge cells, which see a window hanging over the edge (exercise 4).
#
# The same arithmetic in code, reading each layer's kernel and stride from the net itself:

# %%
def receptive_field_table(net):
    """Rows (layer, k, s, r, j) for the trunk and the heads of a fully convolutional net."""
    r, j = 1, 1
    rows = [("input", "", "", r, j)]
    layers = list(net.trunk.children.items()) + [(name, net.children[name]) for name in net.head_names]
    for name, layer in layers:
        if isinstance(layer, Conv2D):
            k, s = layer.kernel, layer.stride
        elif isinstance(layer, MaxPool2D):
            k, s = layer.size, layer.stride
        else:
            continue  # elementwise (PReLU): r and j unchanged
        r, j = r + (k - 1) * j, j * s
        rows.append((name, k, s, r, j))
    return rows


table = receptive_field_table(pnet)
print(f"{'layer':8s} {'k':>3s} {'s':>3s} {'r':>4s} {'j':>4s}")
for name, k, s, r, j in table:
    print(f"{name:8s} {k!s:>3s} {s!s:>3s} {r:4d} {j:4d}")
RF, STRIDE = table[-1][3], table[-1][4]
assert (RF, STRIDE) == (12, 2)

# %% [markdown]
# ## 3.2 Checking it with backprop
#
# Arithmetic on paper is one thing; let us ask the net. The gradient of one output cell with
# respect to the input is non-zero exactly at the pixels that influence that cell. So: run
# P-Net forward on a 32 x 32 input, send `dout = 1` into the face logit of cell (r, c) = (4, 5)
# and 0 everywhere else, and run backward (tutorial 2). The prediction: the non-zero pixels of
# `dx` fill the window rows [2r, 2r + 12) = [8, 20) and columns [2c, 2c + 12) = [10, 22).
#
# (We work in float64 on a copy of the net, so that no gradient underflows to zero by accident.)

# %%
probe, _, _ = pretrained_mtcnn()
probe.astype(np.float64)
rng = np.random.default_rng(0)
x_probe = rng.standard_normal((1, 3, 32, 32))         # (N, C, H, W)
out = probe.forward(x_probe)
print("face logits:", out["face"].shape)               # (1, 2, 11, 11): 11 = ceil(30/2) - 4
r, c = 4, 5
dout = np.zeros_like(out["face"])
dout[0, 1, r, c] = 1.0
dx = probe.backward({"face": dout})                    # (1, 3, 32, 32)
support = np.abs(dx[0]).sum(axis=0) > 0                # any channel non-zero
rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
print(f"non-zero gradient: rows {rows.min()}..{rows.max()}, cols {cols.min()}..{cols.max()}, "
      f"{support.sum()} pixels")
assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2 * r, 2 * r + 11, 2 * c, 2 * c + 11)
assert support.sum() == RF * RF

# %% [markdown]
# Exactly the 12 x 12 window, all 144 pixels. A second, gradient-free check: scramble every
# pixel *outside* the window and the cell's output does not change at all; change one pixel
# in a corner *inside* it and it does.

# %%
x_scrambled = rng.standard_normal(x_probe.shape) * 5
window = (slice(None), slice(None), slice(2 * r, 2 * r + 12), slice(2 * c, 2 * c + 12))
x_scrambled[window] = x_probe[window]
cell_before = probe.forward(x_probe)["face"][0, :, r, c]
cell_after = probe.forward(x_scrambled)["face"][0, :, r, c]
print("outside scrambled, difference:", np.abs(cell_after - cell_before).max())
assert np.array_equal(cell_before, cell_after)
x_corner = x_probe.copy()
x_corner[0, :, 2 * r + 11, 2 * c + 11] += 5.0
print("inside corner changed, difference:",
      np.abs(probe.forward(x_corner)["face"][0, :, r, c] - cell_before).max())

# %%
fig = Figure(layout="constrained", figsize=(9, 4))
ax_grad, ax_cells = fig.subplots(1, 2)
magnitude = np.abs(dx[0]).sum(axis=0)
im = ax_grad.imshow(np.log10(magnitude + 1e-12), cmap="magma", vmin=-6, interpolation="nearest")
ax_grad.add_patch(Rectangle((2 * c - 0.5, 2 * r - 0.5), 12, 12, fill=False, edgecolor="lime", linewidth=1.5))
ax_grad.set_title(f"log10 |d face[{r}, {c}] / d x| on a 32 x 32 input\nnon-zero exactly on the 12 x 12 window (lime)",
                  fontsize=9)
fig.colorbar(im, ax=ax_grad, shrink=0.8)
# neighbouring cells: windows 2 pixels apart
ax_cells.set_xlim(-0.5, 31.5)
ax_cells.set_ylim(31.5, -0.5)
ax_cells.set_aspect("equal")
for dc, color in zip(range(3), ["tab:blue", "tab:orange", "tab:green"]):
    ax_cells.add_patch(Rectangle((2 * (c + dc) - 0.5 + 0.15 * dc, 2 * r - 0.5 + 0.15 * dc), 12, 12, fill=False,
                                 edgecolor=color, linewidth=2, label=f"cell ({r}, {c + dc}): cols {2 * (c + dc)}.."
                                 f"{2 * (c + dc) + 11}"))
ax_cells.legend(fontsize=8, loc="lower left")
ax_cells.set_title("windows of neighbouring cells: 12 wide, 2 apart", fontsize=9)
ax_cells.grid(True, color="0.9")
_tutorial.save(fig, OUT / "receptive_field.png")

# %% [markdown]
# ## 3.3 What P-Net learned
#
# **Filters.** conv1 has 10 filters of shape 3 x 3 x 3 (RGB), `w: (10, 3, 3, 3)`. Shown as tiny
# colour images (each scaled to its own min..max), many look like small edge and
# colour-contrast detectors, the kind of first-layer filters most image nets learn.

# %%
w1 = pnet.trunk["conv1"].params["w"].value
print("conv1 weights:", w1.shape)
fig = plot_filters(w1, title="P-Net conv1: 10 learned 3x3 RGB filters (released model)")
_tutorial.save(fig, OUT / "conv1_filters.png")

# %% [markdown]
# **Feature maps.** Run the trunk on a crop around the astronaut's face and look at the output
# of each layer. `pipeline.plots.feature_maps(net, crop, layer)` takes the crop as it comes,
# `(H, W, 3)` uint8 RGB, normalizes it the way the net was trained, `(pixel - 127.5) / 128`,
# and runs the trunk up to the named layer. Each small map gets its own colour scale (its min
# to max), so compare patterns between maps, not brightness.
# After `prelu1` the maps still look like the photo, each picking out some edges or colours;
# after `prelu3` each cell summarizes a whole 12 x 12 window, and the maps are coarser (stride 2)
# and more abstract: the input to the face/non-face decision.

# %%
image = _tutorial.astronaut()                    # (512, 512, 3) uint8 RGB
face_crop = image[40:200, 150:300]               # (160, 150, 3): 150 x 160 px, the face and some background
maps1 = feature_maps(pnet, face_crop, "prelu1")  # (10, 158, 148)
maps3 = feature_maps(pnet, face_crop, "prelu3")  # (32, 75, 70)
print("prelu1 maps:", maps1.shape, " prelu3 maps:", maps3.shape)
_tutorial.save(plot_feature_maps(maps1, title=f"P-Net after conv1 + PReLU: {maps1.shape[0]} maps of "
                                 f"{maps1.shape[2]} x {maps1.shape[1]} cells"), OUT / "feature_maps_prelu1.png")
_tutorial.save(plot_feature_maps(maps3, title=f"P-Net after conv3 + PReLU: {maps3.shape[0]} maps of "
                                 f"{maps3.shape[2]} x {maps3.shape[1]} cells (one per 12 x 12 px window)"),
               OUT / "feature_maps_prelu3.png")
x_face = normalize(to_chw_float(face_crop))[None]  # (1, 3, 160, 150) float32: the net's input, for exercise 3

# %% [markdown]
# ## 3.4 One pass over the whole image = one pass per 12 x 12 crop
#
# P-Net has no fully connected layer: every layer is a convolution or a pooling, and those
# compute each output cell from a local window, with the same weights everywhere. So running
# P-Net on a big image gives the same numbers as cutting out every 12 x 12 window (2 pixels
# apart) and running P-Net on each one: each window's answer is one cell of the output map.
# One pass shares all the computation of overlapping windows (the idea tutorial 5 takes
# further).
#
# Let us check on the astronaut. The detector scans a pyramid of shrunken copies; on some level
# the face is about 12 pixels wide. We take the level where P-Net is most confident, run P-Net
# once on the whole level, and compare *every* cell with P-Net run on that cell's own crop.

# %%
detector = MTCNNDetector(nets=(pnet, *pretrained_mtcnn()[1:]))
faces, trace = detector.detect(image, trace=True)
k = int(np.argmax([m.max() for m in trace.prob_maps]))
scale = trace.scales[k]
h, w = scaled_size(*image.shape[:2], scale)
level = normalize(resize_area(to_chw_float(image), h, w))       # (3, h, w), as the detector builds it
prob_map = softmax(pnet.forward(level[None])["face"])[0, 1]    # (OH, OW) face probability
print(f"level {k}: scale {scale:.3f}, {w} x {h} px -> {prob_map.shape[1]} x {prob_map.shape[0]} cells (W x H)")
# the same map as inside the detector, to float32 rounding: the detector runs the level in strips
# and a faster layout, whose matrix products round in the last bits differently on some CPUs
assert np.allclose(prob_map, trace.prob_maps[k], rtol=0, atol=1e-5)

differences = []
for row in range(prob_map.shape[0]):
    for col in range(prob_map.shape[1]):
        if 2 * row + RF > h or 2 * col + RF > w:
            continue  # a ceil-mode edge cell whose window hangs over the border (exercise 4)
        crop = level[None, :, 2 * row : 2 * row + RF, 2 * col : 2 * col + RF]   # (1, 3, 12, 12)
        crop_prob = softmax(pnet.forward(crop)["face"])[0, 1, 0, 0]            # a single 1 x 1 cell
        differences.append(abs(crop_prob - prob_map[row, col]))
print(f"{len(differences)} cells compared with their crops: max difference {max(differences):.1e} "
      "(float32 rounding)")
assert max(differences) < 1e-5

# %%
best_r, best_c = np.unravel_index(np.argmax(prob_map), prob_map.shape)
crop = level[:, 2 * best_r : 2 * best_r + RF, 2 * best_c : 2 * best_c + RF]
crop_prob = softmax(pnet.forward(crop[None])["face"])[0, 1, 0, 0]
level_rgb = np.clip(level * 128 + 127.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)

fig = Figure(layout="constrained", figsize=(12, 4.2))
ax_level, ax_map, ax_crop = fig.subplots(1, 3)
plot_receptive_fields(level_rgb, [[2 * best_c, 2 * best_r, 2 * best_c + RF, 2 * best_r + RF]], ax=ax_level,
                      title=f"pyramid level {k} ({w} x {h} px)\nwindow of the best cell ({best_r}, {best_c})")
im = ax_map.imshow(prob_map, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
ax_map.add_patch(Rectangle((best_c - 0.5, best_r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
ax_map.set_title(f"one pass over the level: {prob_map.shape[1]} x {prob_map.shape[0]} cells\n"
                 f"cell ({best_r}, {best_c}): p(face) = {prob_map[best_r, best_c]:.5f}", fontsize=10)
fig.colorbar(im, ax=ax_map, shrink=0.8)
ax_crop.imshow(level_rgb[2 * best_r : 2 * best_r + RF, 2 * best_c : 2 * best_c + RF], interpolation="nearest")
ax_crop.set_title(f"that 12 x 12 crop alone: 1 x 1 output\np(face) = {crop_prob:.5f}", fontsize=10)
ax_crop.axis("off")
fig.suptitle("A fully convolutional net: each output cell is the net's answer for one 12 x 12 window")
_tutorial.save(fig, OUT / "fully_convolutional.png")

# %% [markdown]
# ## Exercises
#
# 1. **R-Net and O-Net.** Run `receptive_field_table(RNet())` and `receptive_field_table(ONet())`
#    (from `nets`) and compare with the table in 3.1: the last conv cells see 17 and 33 pixels.
#    *Hint:* the function skips every module that is not a conv or a pool, including the
#    `Linear` layers; those see the whole map, so "receptive field" stops meaning a window.
# 2. **A 3x3 pool.** The MTCNN paper's figure draws P-Net's pool as 3x3/2, the released model
#    uses 2x2/2. What would the receptive field be with 3x3? *Hint:* only the pool's row of the
#    table changes: r = 3 + 2 * 1 = 5, then + 4 + 4.
# 3. **Which pixel matters most?** Plot the gradient magnitude of 3.2 on a real face crop
#    (`x_face`) for the cell of highest face probability. Which parts of the 12 x 12 window
#    carry the largest gradient? *Hint:* use `probe.forward(x_face.astype(np.float64))`, then
#    `np.unravel_index(np.argmax(...))` over the face probability map.
# 4. **The edge cells.** Run P-Net on a 13 x 13 input (`h - 2 = 11` is odd, so the ceil-mode
#    pool's last window overhangs). How many cells come out, and which pixels would the last
#    cell's window [2r, 2r + 12) need? What does the net use instead?
#    *Hint:* `conv_output_size(11, 2, 2, ceil=True)` is 6, so the output is 2 x 2; the last
#    window reaches one pixel past the border, and the pool simply takes the maximum of the
#    one row (column) that exists (the ceil-mode note at the end of 3.1). No 12 x 12 crop
#    gives that cell.
# 5. **Cost of crops.** Time the loop over crops in 3.4 against the single pass. How many
#    multiply-adds does conv3 repeat in the crop version? *Hint:* neighbouring windows share
#    10 of their 12 columns.
