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
# # 5. SPPNet: compute the features once, pool every candidate from them
#
# MTCNN's later stages, like R-CNN before them, **crop** every candidate box out of the
# image, resize it to a fixed size and run a net on each crop. When candidates overlap, the
# same pixels go through the same convolutions again and again. SPPNet (He, Zhang, Ren, Sun,
# "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual Recognition", ECCV 2014 /
# TPAMI 2015) removes the repetition:
#
# 1. run the convolutional layers **once** on the whole image;
# 2. **map** each candidate box from image pixels onto the feature map (the paper's
#    Appendix A, "Mapping a window to feature maps"; section 5.1);
# 3. **spatial pyramid pooling** turns that region, whatever its size, into a vector of fixed
#    length (the paper's section 2.3 and Appendix A; section 5.2), which a fully connected
#    layer can take.
#
# You will work out step 2 by hand, draw the bins of step 3, and then time both approaches
# on the candidate boxes that P-Net proposes for a real photo, using P-Net's own
# convolutional trunk as the feature extractor. The photo is scikit-image's astronaut:
# `python -m pip install scikit-image` if you do not have it.

# %%
import inspect
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import spp_bins, spp_forward
from pipeline.detection.crops import crop_and_resize
from pipeline.data.images import to_chw_float
from pipeline.detection.mtcnn import MTCNNDetector, Trace
from pipeline.plots import draw_boxes
from pipeline.detection.proposals import normalize
from pipeline.detection.roi import box_to_cells

OUT = _tutorial.output_dir("05_sppnet")
QUICK = _tutorial.QUICK

# %% [markdown]
# ## 5.1 Mapping a box onto the feature map
#
# A cell of a feature map "looks at" a patch of the image, its *receptive field*. Following the
# SPP paper, assume every conv or pool layer with a p x p filter is padded by floor(p/2) pixels.
# Then cell x' (0-based) has its receptive field **centred** at image coordinate S * x', where
# S is the product of all strides so far (S = 16 for the ZF-5 net the paper uses).
#
# To map an image window [x_left, x_right], take the cells whose centres lie strictly inside it:
#
# ```
# left/top:      x' = floor(x_left / S) + 1
# right/bottom:  x' = ceil(x_right / S) - 1
# ```
#
# (and likewise for y). **Worked example**, S = 16, the box x from 50 to 200, y from 40 to 130:
#
# ```
# left   = floor( 50/16) + 1 = 3 + 1 = 4    centre 4*16  =  64, inside   (cell 3: 48, outside)
# right  = ceil (200/16) - 1 = 13 - 1 = 12  centre 12*16 = 192, inside   (cell 13: 208, outside)
# top    = floor( 40/16) + 1 = 2 + 1 = 3    centre 3*16  =  48, inside   (cell 2: 32, outside)
# bottom = ceil (130/16) - 1 = 9 - 1 = 8    centre 8*16  = 128, inside   (cell 9: 144, outside)
# ```
#
# The region is columns 4..12 and rows 3..8 of the feature map: 9 x 6 cells.
#
# Two guards of our own (the paper's rule has none): a window smaller than S can map to
# right < left (no centre falls inside it); then we use the single cell whose centre is nearest
# the window's centre. And the result is clamped to the map, since candidate boxes may hang
# over the image border.
#
# The mapping lives in `pipeline.detection.roi.box_to_cells`; here is its code, line for line the rule
# above:

# %%
print(inspect.getsource(box_to_cells))

print(box_to_cells([[50, 40, 200, 130]], stride=16, offset=0, map_height=40, map_width=40))
print("a 10-pixel box:", box_to_cells([[100, 100, 110, 110]], stride=16, offset=0, map_height=40, map_width=40))
assert box_to_cells([[50, 40, 200, 130]], 16, 0, 40, 40).tolist() == [[4, 3, 12, 8]]

# %% [markdown]
# The 10-pixel box from 100 to 110 gives left = floor(100/16) + 1 = 7 but right =
# ceil(110/16) - 1 = 6: no cell centre (96, 112, ...) lies inside it, so the guard picks cell
# rint(105/16) = 7, whose centre 112 is the nearest to the box centre 105.

# %%
fig = Figure(layout="constrained", figsize=(6.5, 4.6))
ax = fig.subplots()
S = 16
centres = np.arange(0, 16) * S
gx, gy = np.meshgrid(centres, centres[:11])
ax.scatter(gx, gy, s=8, color="0.6", label="cell centres S * (x', y')")
left, top, right, bottom = box_to_cells([[50, 40, 200, 130]], S, 0, 40, 40)[0]
sx, sy = np.meshgrid(np.arange(left, right + 1) * S, np.arange(top, bottom + 1) * S)
ax.scatter(sx, sy, s=22, color="tab:blue", label=f"mapped cells: cols {left}..{right}, rows {top}..{bottom}")
ax.add_patch(Rectangle((50, 40), 150, 90, fill=False, edgecolor="tab:red", linewidth=2,
                       label="image box x 50..200, y 40..130"))
ax.set_xlim(-8, 250)
ax.set_ylim(170, -8)
ax.set_aspect("equal")
ax.set_xlabel("image x (pixels)")
ax.set_ylabel("image y (pixels)")
ax.legend(loc="lower right", fontsize=8)
ax.set_title("SPP box mapping, S = 16: keep the cells whose centres lie inside the box")
_tutorial.save(fig, OUT / "box_mapping.png")

# %% [markdown]
# **P-Net has no padding.** Its convolutions are "valid", so cell 0's receptive field is the
# window [0, 12) and its centre is at 6, not 0. The paper's appendix covers this case: when the
# padding is not floor(p/2), add an offset to x before dividing. Cell c of P-Net's trunk covers
# image pixels [2c, 2c + 12) and is centred at 2c + 6, so the offset is 6.
#
# We can get the 6 from the receptive-field recurrence for the centre of the first cell
# (tutorial 3, section 3.1), `c_l = c_{l-1} + ((k - 1)/2 - pad) * j_{l-1}` with `j` the
# running stride and `c_0 = 0.5` (the centre of pixel 0, which covers [0, 1)).

# %%
PNET_TRUNK = [("conv1", 3, 1), ("pool1", 2, 2), ("conv2", 3, 1), ("conv3", 3, 1)]  # (name, kernel, stride)
centre, jump = 0.5, 1
for name, k, s in PNET_TRUNK:
    centre += (k - 1) / 2 * jump   # pad = 0 everywhere
    jump *= s
print(f"P-Net trunk: total stride S = {jump}, cell 0 centred at x = {centre}")
PNET_STRIDE, PNET_OFFSET = jump, centre
assert (PNET_STRIDE, PNET_OFFSET) == (2, 6.0)

# %% [markdown]
# A P-Net worked example: the box x from 100 to 160 maps to
# left = floor((100 - 6)/2) + 1 = 47 + 1 = 48 (centre 2*48 + 6 = 102) and
# right = ceil((160 - 6)/2) - 1 = 77 - 1 = 76 (centre 158), so 29 columns.
# A check on many random boxes: the chosen first and last cells have their centres inside the
# box, and their outer neighbours do not (unless the guard or the clamp had to step in).

# %%
print(box_to_cells([[100, 100, 160, 160]], PNET_STRIDE, PNET_OFFSET, 300, 300))
rng = np.random.default_rng(0)
xy = rng.uniform(20, 400, (1000, 2))  # away from the border: no clamping at 0
random_boxes = np.concatenate([xy, xy + rng.uniform(14, 200, (1000, 2))], axis=1)
cells = box_to_cells(random_boxes, PNET_STRIDE, PNET_OFFSET, 10_000, 10_000)  # a huge map: no clamping at the end


def centre_of(cell):
    return PNET_OFFSET + PNET_STRIDE * cell


assert np.all(centre_of(cells[:, :2]) > random_boxes[:, :2]) and np.all(centre_of(cells[:, 2:]) < random_boxes[:, 2:])
assert np.all(centre_of(cells[:, :2] - 1) <= random_boxes[:, :2])
assert np.all(centre_of(cells[:, 2:] + 1) >= random_boxes[:, 2:])
print("1000 random boxes: first/last cells inside, their neighbours outside")

# %% [markdown]
# ## 5.2 Spatial pyramid pooling: any size in, fixed length out
#
# The mapped regions have different sizes: 9 x 6 cells for one box, 29 x 29 for another. A fully
# connected layer needs the same number of inputs every time. SPP cuts the region into a fixed
# grid of n x n **bins** and max-pools each bin, for several n (a "pyramid" of levels), and
# concatenates the results. With levels (4, 2, 1) and C channels that is always
# C * (16 + 4 + 1) = 21 C numbers.
#
# Bin i of n along an axis of L cells covers `[floor(i*L/n), ceil((i+1)*L/n))`: round the start
# down and the end up (the bin boundaries of the paper's Appendix A and its released code).
# For L = 5 cells and n = 4 bins:
#
# ```
# i = 0: [floor(0/4), ceil( 5/4)) = [0, 2)
# i = 1: [floor(5/4), ceil(10/4)) = [1, 3)
# i = 2: [floor(10/4), ceil(15/4)) = [2, 4)
# i = 3: [floor(15/4), ceil(20/4)) = [3, 5)
# ```
#
# Every bin is non-empty and, when n does not divide L, neighbouring bins share a cell.
# `layers.spp_bins` computes exactly this, with integers only:

# %%
for length in (5, 7):
    for n in (4, 2, 1):
        print(f"L = {length}, n = {n}: {spp_bins(length, n)}")
assert spp_bins(5, 4) == [(0, 2), (1, 3), (2, 4), (3, 5)]

# %% [markdown]
# The figure shows a 5 x 7 region (5 rows, 7 columns, values a shuffled arange so no two tie),
# its bins at each level, and the pooled n x n outputs. Each level's output is the maximum of
# each bin; the 1 x 1 level is the maximum of the whole region.

# %%
region = np.random.default_rng(3).permutation(35).reshape(1, 1, 5, 7).astype(np.float64)  # (N, C, H, W)
LEVELS = (4, 2, 1)
pooled, _ = spp_forward(region, LEVELS)
print("spp output shape:", pooled.shape, "= C * (16 + 4 + 1) with C = 1")

bin_colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
              "tab:cyan", "navy", "darkred", "darkgreen", "goldenrod", "black", "magenta", "teal"]
fig = Figure(layout="constrained", figsize=(12, 5.6))
axes = fig.subplots(2, 3, gridspec_kw={"height_ratios": [5, 4]})
offset = 0
for col, n in enumerate(LEVELS):
    ax = axes[0, col]
    for r in range(5):
        for c in range(7):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.75"))
            ax.text(c + 0.5, r + 0.5, f"{region[0, 0, r, c]:g}", ha="center", va="center", fontsize=9)
    level_out = pooled[0, offset : offset + n * n].reshape(n, n)
    offset += n * n
    for i, (r0, r1) in enumerate(spp_bins(5, n)):
        for j, (c0, c1) in enumerate(spp_bins(7, n)):
            inset = 0.06 + 0.05 * ((i + j) % 2)
            color = bin_colors[(i * n + j) % len(bin_colors)]
            ax.add_patch(Rectangle((c0 + inset, r0 + inset), c1 - c0 - 2 * inset, r1 - r0 - 2 * inset, fill=False,
                                   edgecolor=color, linewidth=2))
    ax.set_xlim(-0.1, 7.1)
    ax.set_ylim(5.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"level n = {n}: {n * n} bin{'s' if n > 1 else ''} (rows {spp_bins(5, n)},\n"
                 f"cols {spp_bins(7, n)})", fontsize=8)
    ax = axes[1, col]
    for i in range(n):
        for j in range(n):
            color = bin_colors[(i * n + j) % len(bin_colors)]
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor="white", edgecolor=color, linewidth=2))
            ax.text(j + 0.5, i + 0.5, f"{level_out[i, j]:g}", ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.1, 4.1)
    ax.set_ylim(4.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"max of each bin: {n} x {n}", fontsize=9)
fig.suptitle("Spatial pyramid pooling of a 5 x 7 region, levels (4, 2, 1): 16 + 4 + 1 = 21 numbers per channel")
_tutorial.save(fig, OUT / "spp_bins.png")

# %% [markdown]
# Regions of any size give the same length, which is the whole point:

# %%
for shape in [(5, 7), (3, 3), (1, 1), (12, 20), (29, 29)]:
    x_region = np.random.default_rng(0).standard_normal((1, 32, *shape))  # (N, C=32, H, W)
    length = spp_forward(x_region)[0].shape[1]
    print(f"region {shape[0]:2d} x {shape[1]:2d} x 32 channels -> spp vector of length {length}")

# %% [markdown]
# ## 5.3 Once per image against once per candidate, on a real photo
#
# Now a realistic test. We run the MTCNN detector on the astronaut photo and take the square
# candidate boxes P-Net proposes (`trace.stage1_output`). For every candidate we want a feature
# vector from P-Net's convolutional **trunk** (`net.trunk`: conv1, pool1, conv2, conv3, with
# their PReLUs; 32 channels out, total stride 2, receptive field 12). Two ways:
#
# * **per candidate** (R-CNN, and MTCNN's own R-/O-Net stages): crop the box, resize it to a
#   fixed 48 x 48 (`pipeline.detection.crops.crop_and_resize`), run the trunk on the crop, SPP-pool its
#   output;
# * **shared** (SPPNet): run the trunk once on the whole image, map each box onto the feature
#   map with `box_to_cells`, SPP-pool that region.
#
# Both give one vector of 32 * 21 = 672 numbers per candidate. (They are not equal: the crop
# path resamples each box to 48 x 48 first, the shared path sees the box at the image's own
# resolution. The SPP paper found that detection with the shared features is about as accurate
# as with the cropped ones, and much faster.)

# %%
image = _tutorial.astronaut()                          # (512, 512, 3) uint8 RGB
detector = MTCNNDetector()
faces, trace = detector.detect(image, trace=True)
candidates = trace.stage1_output.boxes                   # (K, 4) x1, y1, x2, y2, image pixels
trunk = detector.pnet.trunk
image_chw = to_chw_float(image)                        # (3, 512, 512) float32, 0..255
x_image = normalize(image_chw)[None]                   # (1, 3, 512, 512), as the nets expect
sides = candidates[:, 2] - candidates[:, 0]
print(f"{len(candidates)} candidate boxes, sides from {sides.min():.0f} to {sides.max():.0f} pixels")
print("trunk:", list(trunk.children))

CROP = 48
LEVELS = (4, 2, 1)


# The shared path: one convolution pass, then a cheap pooling step per box.
def conv_shared():
    """Trunk once on the whole image: (1, 32, 251, 251)."""
    return trunk.forward(x_image)


def pool_shared(fmap, boxes):
    """Map each box onto fmap and SPP-pool its region: (K, 32 * 21)."""
    cells = box_to_cells(boxes, PNET_STRIDE, PNET_OFFSET, *fmap.shape[2:])
    return np.concatenate([spp_forward(fmap[:, :, top : bottom + 1, left : right + 1], LEVELS)[0]
                           for left, top, right, bottom in cells])


# The per-candidate path: crop, then one convolution pass and one pooling step per box.
def crops_of(boxes):
    """Crop each box and resize to CROP x CROP: (K, 3, CROP, CROP), normalized."""
    patches, _ = crop_and_resize(image_chw, boxes, CROP)
    return normalize(patches)


def conv_per_crop(patches):
    """Trunk on each crop: a list of K maps (1, 32, 19, 19)."""
    return [trunk.forward(patches[k : k + 1]) for k in range(len(patches))]


def pool_per_crop(maps):
    """SPP of each crop's map: (K, 32 * 21)."""
    return np.concatenate([spp_forward(m, LEVELS)[0] for m in maps])


fmap_once = conv_shared()
crop_maps = conv_per_crop(crops_of(candidates))
shared = pool_shared(fmap_once, candidates)
per_crop = pool_per_crop(crop_maps)
FMAP_HW, CROP_MAP_HW = fmap_once.shape[2:], crop_maps[0].shape[2:]   # (251, 251) and (19, 19)
print("shared:", shared.shape, " per crop:", per_crop.shape)

# %% [markdown]
# Now the timing, part by part, so we can see *where* the two paths differ. Each part is run
# a few times and the best time is kept.

# %%
def time_both(boxes, repeats):
    """Seconds spent in each part of the two paths on these boxes (best of `repeats` runs)."""
    def timed(fn):
        best, out = float("inf"), None
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - start)
        return out, best

    fmap, t_conv_shared = timed(conv_shared)
    _, t_pool_shared = timed(lambda: pool_shared(fmap, boxes))
    patches, t_crop = timed(lambda: crops_of(boxes))
    maps, t_conv_crops = timed(lambda: conv_per_crop(patches))
    _, t_pool_crops = timed(lambda: pool_per_crop(maps))
    return {"K": len(boxes),
            "shared conv": t_conv_shared, "shared pool": t_pool_shared,
            "crop conv": t_conv_crops, "crop pool": t_pool_crops, "crop resize": t_crop,
            "shared total": t_conv_shared + t_pool_shared,
            "crop total": t_crop + t_conv_crops + t_pool_crops}


def print_times(t):
    print(f"K = {t['K']} candidates             per candidate     shared")
    print(f"  crop + resize                  {t['crop resize']:8.3f} s          -")
    print(f"  convolution (the trunk)        {t['crop conv']:8.3f} s   {t['shared conv']:8.3f} s"
          f"   ({t['crop conv'] / t['shared conv']:.1f}x)")
    print(f"  map + SPP pooling              {t['crop pool']:8.3f} s   {t['shared pool']:8.3f} s")
    print(f"  total                          {t['crop total']:8.3f} s   {t['shared total']:8.3f} s"
          f"   ({t['crop total'] / t['shared total']:.1f}x)")


repeats = 1 if QUICK else 3
times = time_both(candidates, repeats)
print_times(times)
image_pixels = image.shape[0] * image.shape[1]
print(f"pixels through the trunk: per candidate {len(candidates) * CROP * CROP:,} vs shared {image_pixels:,} "
      f"(ratio {len(candidates) * CROP * CROP / image_pixels:.2f})")

# %% [markdown]
# What the table says. The sentences below are printed from this run's measurements (yours
# will differ with the machine and its load); the reasons behind them are these:
#
# * **Convolution** is where the two paths differ. The per-candidate path pushes K crops of
#   48 x 48 pixels through the trunk; the shared path pushes the image once. The ratio of those
#   pixel counts is the ratio of convolution arithmetic. The per-candidate path also pays Python
#   and NumPy overhead for seven small layers K times instead of once, so its convolution time
#   is larger than the pixel ratio alone predicts.
# * **Pooling** does not get cheaper by sharing: it is one SPP call per box on either path, and
#   the regions differ in size. A crop's map is always 19 x 19 cells; a shared region is the box
#   at the image's own resolution, 1 cell per 2 pixels, so a box wider than about 38 px gives a
#   bigger region than its crop does.
# * **Cropping and resizing** costs the per-candidate path extra; the shared path has no such step.

# %%
def explain(t, boxes):
    """Print what the timings of `time_both` say, from the numbers themselves."""
    pixel_ratio = len(boxes) * CROP * CROP / image_pixels
    cells = box_to_cells(boxes, PNET_STRIDE, PNET_OFFSET, *FMAP_HW)
    region_cells = (cells[:, 2] - cells[:, 0] + 1) * (cells[:, 3] - cells[:, 1] + 1)
    crop_cells = CROP_MAP_HW[0] * CROP_MAP_HW[1]
    print(f"* Convolution: per candidate {t['crop conv'] / t['shared conv']:.1f}x as long as shared, for "
          f"{pixel_ratio:.2f}x the pixels.")
    print(f"* Pooling: {t['crop pool']:.3f} s per candidate vs {t['shared pool']:.3f} s shared "
          f"({t['shared pool'] / t['crop pool']:.2f}x); shared regions hold {region_cells.mean():.0f} cells on "
          f"average, a crop's map {crop_cells}.")
    print(f"* Crop + resize: {t['crop resize']:.3f} s, {100 * t['crop resize'] / t['crop total']:.0f}% of the "
          f"per-candidate total.")
    print(f"* Total: shared is {t['crop total'] / t['shared total']:.1f}x faster; pooling is "
          f"{100 * t['shared pool'] / t['shared total']:.0f}% of the shared path's time.")


explain(times, candidates)

# %% [markdown]
# With only the default candidates, most of them small, on a 512 x 512 image, the pixel ratio
# is small, so sharing saves less than it could. SPPNet was designed for the regime of R-CNN:
# about **2,000** candidate windows per image. We can get that many *real* candidates here by
# lowering P-Net's threshold from 0.6 to 0.05 (stage 1 only), and time both paths on the
# first K of them:

# %%
proposals = MTCNNDetector(thresholds=(0.05, 0.7, 0.7)).propose(image_chw, Trace(image=image))
many = proposals.boxes[np.argsort(-proposals.scores, kind="stable")]  # best first: "first K" means something
fractions = (0.25, 1.0) if QUICK else (0.0625, 0.125, 0.25, 0.5, 1.0)
sweep = [time_both(many[: max(1, int(f * len(many)))], 1) for f in fractions]
print(f"{len(many)} candidates at P-Net threshold 0.05\n")
print_times(sweep[-1])
explain(sweep[-1], many[: sweep[-1]["K"]])

# %% [markdown]
# With about 2,000 candidates the crops hold many times the image's pixels, and the printed
# convolution ratio grows with them: that is SPPNet's saving (the paper reports 24-102x over
# R-CNN, whose convolutions were almost all of its cost). The *total* speed-up is smaller than
# the convolution's whenever pooling, which sharing does not make cheaper, is a large share of
# the shared path's time (printed above). This is Amdahl's law: speeding up one part helps
# only as much as that part's share of the total (exercise 3).
#
# The figure: the candidate boxes, the one shared feature map with the mapped regions of the six
# best candidates, and the time of each path against the number of candidates K. The
# per-candidate convolution grows linearly with K; the shared convolution does not grow at all.

# %%
fig = Figure(layout="constrained", figsize=(14, 4.6))
ax_img, ax_map, ax_time = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.15]})
ax_img.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
draw_boxes(ax_img, candidates, linewidth=0.7)
ax_img.set_title(f"{len(candidates)} P-Net candidates (trace.stage1_output)", fontsize=10)
ax_img.axis("off")

fmap = conv_shared()
channel = int(np.argmax(fmap[0].std(axis=(1, 2))))  # the most varied channel, for contrast
some = np.argsort(-trace.stage1_output.scores)[:6]    # the six best-scored candidates
ax_map.imshow(fmap[0, channel], cmap="viridis", interpolation="nearest")
for left, top, right, bottom in box_to_cells(candidates[some], PNET_STRIDE, PNET_OFFSET, *fmap.shape[2:]):
    ax_map.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                               edgecolor="lime", linewidth=1.2))
ax_map.set_title(f"trunk output, channel {channel} of 32 ({fmap.shape[3]} x {fmap.shape[2]} cells),\n"
                 "computed once; mapped regions of the 6 best candidates", fontsize=10)
ax_map.axis("off")

ks = [t["K"] for t in sweep]
ax_time.plot(ks, [t["crop total"] for t in sweep], "o-", color="tab:red", label="per candidate, total")
ax_time.plot(ks, [t["shared total"] for t in sweep], "o-", color="tab:green", label="shared, total")
ax_time.plot(ks, [t["crop conv"] for t in sweep], "o--", color="tab:red", alpha=0.6,
             label=f"per candidate, convolution only (crops {CROP}x{CROP})")
ax_time.plot(ks, [t["shared conv"] for t in sweep], "o--", color="tab:green", alpha=0.6,
             label="shared, convolution only")
ax_time.set_xlabel("number of candidate boxes K (P-Net threshold 0.05, best first)")
ax_time.set_ylabel("seconds")
ax_time.set_ylim(bottom=0)
ax_time.legend(fontsize=8)
last = sweep[-1]
ax_time.set_title(f"K = {last['K']}: convolution {last['crop conv'] / last['shared conv']:.0f}x faster shared, "
                  f"total {last['crop total'] / last['shared total']:.1f}x", fontsize=10)
fig.suptitle("SPPNet on P-Net's trunk: compute the features once, pool every candidate from them")
_tutorial.save(fig, OUT / "shared_features.png")

# %% [markdown]
# ## Exercises
#
# 1. **Map by hand.** With S = 16 and no offset, map the box x 37..91, y 12..40. Then map the
#    same box for P-Net (S = 2, offset 6). Check with `box_to_cells`.
#    *Hint:* x: floor(37/16) + 1 = 3 and ceil(91/16) - 1 = 5.
# 2. **When does sharing not pay?** Set `CROP = 24` (R-Net's input size) and predict, from the
#    pixel ratio, which path's convolution wins for the ~150 default candidates. Then measure.
#    *Hint:* 150 crops of 24 x 24 are about a third of a 512 x 512 image.
# 3. **Amdahl's law.** From the K ~ 2,000 table, what is the largest total speed-up the shared
#    path could reach if its convolution cost nothing? *Hint:* divide the per-candidate total by
#    the shared pooling time alone; to go further, the pooling itself must get faster.
# 4. **Batch the crops.** Run the trunk once on all crops stacked as `(K, 3, 48, 48)` instead of
#    one at a time, and time it. Does that remove the arithmetic or only the per-call overhead?
#    *Hint:* `trunk.forward(patches)` accepts a batch; then SPP each `out[k : k + 1]`.
# 5. **Fast R-CNN's rule.** Fast R-CNN maps a coordinate by simply rounding `x / S`. Implement it
#    for P-Net (remember the offset) and count how many candidates get a different region than
#    with `box_to_cells`. *Hint:* compare the (K, 4) integer arrays with `np.any(a != b, axis=1)`.
# 6. **SPP's backward.** Cells shared by two bins (or winning at two levels) must receive both
#    gradients. Check `spp_forward`/`spp_backward` with `layers.gradcheck.check_op` on the 5 x 7
#    region above. *Hint:* `check_op("spp", spp_forward, spp_backward, {"x": region},
#    hyper={"levels": (4, 2, 1)})`; the shuffled arange keeps the maxima free of ties.
# 7. **A fixed-size head.** Why could a fully connected layer not take a region of the shared map
#    directly, and what would change if each region were *resized* to a fixed size instead of
#    SPP-pooled? *Hint:* the number of inputs of `Linear` is fixed; resizing a feature map
#    interpolates between activations, which max pooling does not.
