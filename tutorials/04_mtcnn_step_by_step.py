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
# # 4. MTCNN step by step
#
# MTCNN (Zhang, Zhang, Li, Qiao, "Joint Face Detection and Alignment using Multi-task Cascaded
# Convolutional Networks", IEEE Signal Processing Letters, 2016) finds faces with a cascade of
# three small nets. Each stage is cheap enough for the boxes it gets and throws most of them
# away, so the expensive stages only see a few:
#
# ```
# image -> pyramid -> P-Net on every level -> candidate boxes -> NMS -> box regression   stage 1: propose
#       -> crop 24x24 -> R-Net -> threshold -> NMS -> box regression                     stage 2: refine
#       -> crop 48x48 -> O-Net -> threshold -> landmarks -> box regression -> NMS (Min)  stage 3: output
# ```
#
# `MTCNNDetector.detect(image)` runs all of it. Here we call the three stages ourselves,
# `det.propose`, `det.refine` and `det.output`, and look at what each one receives and returns.
# A `Trace` records every intermediate result; `trace.counts()` tells how many boxes survive
# each step. Boxes are always `(K, 4)` float arrays `x1, y1, x2, y2` in pixels of the original
# image (0-based; width = x2 - x1; see `pipeline/detection/boxes.py`). Image sizes are written W x H
# (width first); array shapes, as NumPy prints them, are (H, W, ...).
#
# Section 4.7 uses scikit-image's astronaut photo: `python -m pip install scikit-image` if you
# do not have it (the detector itself does not need it).

# %%
import time

import matplotlib.cbook
import numpy as np
from matplotlib.figure import Figure

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from pipeline.detection.boxes import apply_regression, iou, make_square, nms
from pipeline.detection.crops import crop_and_resize
from pipeline.data.images import load_image, to_chw_float
from pipeline.detection.mtcnn import MTCNNDetector, Trace
from pipeline.plots import plot_counts, plot_faces, plot_heatmaps, plot_nms, plot_pyramid, plot_stage, plot_stages
from pipeline.detection.pyramid import pyramid_scales, scaled_size

OUT = _tutorial.output_dir("04_mtcnn_step_by_step")

# %% [markdown]
# ## 4.1 The photo
#
# Grace Hopper's portrait ships with matplotlib. `load_image` turns a path (or a Pillow image,
# or an array) into one format, `(H, W, 3)` uint8 RGB; the nets want `(3, H, W)` float32.

# %%
path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
image = load_image(path)                 # (600, 512, 3) uint8 RGB: 512 x 600 px
image_chw = to_chw_float(image)          # (3, 600, 512) float32, values 0..255
H, W = image.shape[:2]
print("image:", image.shape, image.dtype, "->", image_chw.shape, image_chw.dtype)
det = MTCNNDetector()                    # released weights; min_face_size 20, thresholds (0.6, 0.7, 0.7)
trace = Trace(image=image)               # the record the three stages fill in

# %% [markdown]
# ## 4.2 Stage 1: the pyramid
#
# P-Net looks at 12 x 12 windows (tutorial 3). To find a face of 20 pixels (the smallest we ask
# for), shrink the image by 12 / 20 = 0.6 so that the face becomes 12 pixels. Faces of other
# sizes are found on further copies, each shrunk by `factor = 0.709` (about 1/sqrt(2), so each
# level has about half the pixels of the one before), until the short side drops below 12.

# %%
scales = pyramid_scales(H, W, det.min_face_size, det.factor)
for k, s in enumerate(scales):
    h, w = scaled_size(H, W, s)
    print(f"level {k}: scale {s:.4f}  {w:3d} x {h:3d} px  finds faces of about {12 / s:5.0f} px")

# %% [markdown]
# ## 4.3 Stage 1: P-Net, heatmaps and candidate boxes
#
# `det.propose` runs P-Net on every level. For each level P-Net returns a face-probability
# **heatmap** (one cell per 12 x 12 window, 2 pixels apart) and four box-regression offsets per
# cell. Every cell with probability >= 0.6 becomes a candidate box.

# %%
start = time.perf_counter()
candidates = det.propose(image_chw, trace)          # Boxes: .boxes (K, 4), .scores (K,)
print(f"stage 1 took {time.perf_counter() - start:.2f} s and returned {len(candidates)} square boxes")
_tutorial.save(plot_pyramid(trace), OUT / "pyramid.png")
_tutorial.save(plot_heatmaps(trace), OUT / "heatmaps.png")

# %% [markdown]
# **From a cell to a box.** Cell (r, c) of the level with scale s is the level window
# [2c, 2c + 12) x [2r, 2r + 12). Dividing by s maps it back to the photo. The released model's
# decoder rounds the edges to whole pixels, `x1 = floor((2c + 1)/s) - 1`, `x2 = floor((2c + 12)/s)`
# (likewise y), and its regression offsets were trained against those rounded boxes, so we keep
# the rounding (`pipeline.detection.proposals.heatmap_to_boxes`). Here is the arithmetic for the most
# confident cell of all levels:

# %%
k = int(np.argmax([m.max() for m in trace.prob_maps]))
prob, s = trace.prob_maps[k], trace.scales[k]
r, c = np.unravel_index(np.argmax(prob), prob.shape)
by_hand = [np.floor((2 * c + 1) / s) - 1, np.floor((2 * r + 1) / s) - 1,
           np.floor((2 * c + 12) / s), np.floor((2 * r + 12) / s)]
print(f"level {k} (scale {s:.4f}), cell (r, c) = ({r}, {c}), p(face) = {prob[r, c]:.4f}")
for name, cell, first, last in (("x", c, by_hand[0], by_hand[2]), ("y", r, by_hand[1], by_hand[3])):
    print(f"{name}1 = floor(({2 * cell} + 1) / {s:.4f}) - 1 = {first:.0f},   "
          f"{name}2 = floor(({2 * cell} + 12) / {s:.4f}) = {last:.0f}")
cells_r, cells_c = np.nonzero(prob >= det.thresholds[0])       # candidates come in row-major cell order
index = int(np.flatnonzero((cells_r == r) & (cells_c == c))[0])
print("the detector's candidate:", trace.level_candidates[k].boxes[index])
assert np.array_equal(trace.level_candidates[k].boxes[index], np.array(by_hand, dtype=np.float32))

# %% [markdown]
# **Non-maximum suppression (NMS).** A face lights up several neighbouring cells, and on
# several levels, so it gets many overlapping candidates. Greedy NMS keeps the best-scored box,
# drops every remaining box that overlaps it by more than a threshold (intersection over
# union, IoU), and repeats with the best of the rest. By hand, with threshold 0.5:
#
# ```
# A = [0, 0, 10, 10]   score 0.9
# B = [1, 1, 11, 11]   score 0.8    IoU(A, B) = 9*9 / (100 + 100 - 81) = 81/119 = 0.68 > 0.5: dropped
# C = [20, 20, 30, 30] score 0.7    IoU(A, C) = 0: kept
# ```

# %%
toy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
print("IoU of A with A, B, C:", iou(toy[0], toy).round(3))
print("nms keeps:", nms(toy, np.array([0.9, 0.8, 0.7]), 0.5))
assert nms(toy, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]

# %% [markdown]
# Stage 1 runs NMS twice: within each level (IoU 0.5), then across all levels (IoU 0.7).
# The second round only removes a box that overlaps a better one from *another* level by more
# than 0.7; on some photos it finds nothing to remove (compare the counts in the titles).

# %%
_tutorial.save(plot_nms(trace), OUT / "nms.png")

# %% [markdown]
# **Box regression and squaring.** Each P-Net cell also predicts four offsets
# `(dx1, dy1, dx2, dy2)`, fractions of the box width and height by which to move each edge:
# the 12 x 12 grid is coarse, and regression moves the box onto the face. Then the box is grown
# into a square around its centre, because the next net takes square crops. By hand:
#
# ```
# box [100, 100, 140, 140], offsets [0.1, -0.05, 0.0, 0.2], w = h = 40
# regressed: [100 + 0.1*40, 100 - 0.05*40, 140 + 0*40, 140 + 0.2*40] = [104, 98, 140, 148]
# square:    w = 36, h = 50, side 50: x1 = 104 + (36 - 50)/2 = 97  ->  [97, 98, 147, 148]
# ```
#
# (Stage 1 itself measures P-Net's windows one pixel short, w = x2 - x1 - 1, because the
# released offsets were fitted that way; see the comment in `MTCNNDetector.propose`.)

# %%
regressed = apply_regression(np.array([[100.0, 100, 140, 140]]), np.array([[0.1, -0.05, 0.0, 0.2]]))
print("regressed:", regressed, " square:", make_square(regressed))
assert np.allclose(make_square(regressed), [[97, 98, 147, 148]])

# %% [markdown]
# ## 4.4 Stage 2: R-Net
#
# Every stage-1 box is cropped from the photo and resized to 24 x 24 (`crop_and_resize`). R-Net,
# a bigger net with a fully connected layer, scores each crop; boxes above 0.7 survive, then
# NMS, regression and squaring again. Below: the crops R-Net found most and least face-like.

# %%
start = time.perf_counter()
refined = det.refine(image_chw, candidates, trace)
print(f"stage 2 took {time.perf_counter() - start:.2f} s: {len(trace.stage2_input)} crops in, "
      f"{len(trace.stage2_passed)} passed, {len(refined)} after NMS")

crops, kept = crop_and_resize(image_chw, candidates.boxes, 24)   # (K, 3, 24, 24): what R-Net saw
rnet_scores = trace.stage2_input.scores                             # one per kept crop, same order
order = np.argsort(-rnet_scores)
show = np.concatenate([order[:8], order[-8:]])
fig = Figure(layout="constrained", figsize=(12, 3.6))
for ax, i in zip(fig.subplots(2, 8).ravel(), show):
    ax.imshow(np.clip(crops[i], 0, 255).astype(np.uint8).transpose(1, 2, 0), interpolation="nearest")
    ax.set_title(f"{rnet_scores[i]:.3f}", fontsize=9, color="green" if rnet_scores[i] > det.thresholds[1] else "red")
    ax.axis("off")
fig.suptitle("R-Net's 24 x 24 inputs: the 8 most face-like (top) and 8 least (bottom), with p(face)")
_tutorial.save(fig, OUT / "rnet_crops.png")
_tutorial.save(plot_stage(trace, "rnet"), OUT / "rnet.png")

# %% [markdown]
# ## 4.5 Stage 3: O-Net and the landmarks
#
# The survivors are cropped at 48 x 48 for O-Net, the largest net. It scores them (threshold
# 0.7), regresses the boxes once more and also predicts five **landmarks**: eyes, nose tip and
# mouth corners, each as a fraction of the box, `x = x1 + fx * width` (decoded against the box
# O-Net saw, before its regression). A last NMS uses "Min" overlap (intersection over the
# smaller box), which also removes a box lying inside a bigger one.

# %%
start = time.perf_counter()
final, landmarks = det.output(image_chw, refined, trace)
print(f"stage 3 took {time.perf_counter() - start:.2f} s: {len(trace.stage3_input)} crops in, "
      f"{len(trace.stage3_passed)} passed, {len(final)} face(s)")
names = ["left eye", "right eye", "nose", "left mouth corner", "right mouth corner"]
for box, score, points in zip(final.boxes, final.scores, landmarks):
    print(f"face {np.round(box, 1)}  p(face) = {score:.4f}")
    for name, (x, y) in zip(names, points):
        print(f"    {name:19s} x = {x:6.1f}, y = {y:6.1f}")
_tutorial.save(plot_stage(trace, "onet"), OUT / "onet.png")

# %% [markdown]
# ## 4.6 How many boxes each step leaves
#
# The cascade in numbers (`trace.counts()`), and in one sentence printed from them:

# %%
print(f"{'step':34s} boxes")
for step, count in trace.counts():
    print(f"{step:34s} {count:5d}")
n_rnet, n_rnet_passed = len(trace.stage2_input), len(trace.stage2_passed)
print(f"{sum(len(b) for b in trace.level_candidates)} windows passed P-Net; R-Net kept {n_rnet_passed} of its "
      f"{n_rnet} crops ({100 * n_rnet_passed / max(n_rnet, 1):.0f}%); O-Net saw {len(trace.stage3_input)}.")
_tutorial.save(plot_counts(trace), OUT / "counts.png")

# %% [markdown]
# Our three calls did exactly what `detect` does (it also sorts the faces by score):

# %%
faces = det.detect(image)
ours = final.boxes[np.argsort(-final.scores, kind="stable")]
assert len(faces) == len(ours) and all(np.allclose(f.box, b) for f, b in zip(faces, ours))
print(f"detect() found the same {len(faces)} face(s)")
_tutorial.save(plot_faces(image, faces), OUT / "faces.png")

# %% [markdown]
# ## 4.7 A second photo
#
# The astronaut from scikit-image, in one call with `trace=True`, and the whole cascade in one
# overview figure (`plot_stages`).

# %%
astronaut = _tutorial.astronaut()       # (512, 512, 3) uint8 RGB
faces_astro, trace_astro = det.detect(astronaut, trace=True)
print(f"{len(faces_astro)} face(s);", ", ".join(f"{step}: {n}" for step, n in trace_astro.counts()))
_tutorial.save(plot_stages(trace_astro), OUT / "astronaut_stages.png")
print("figures written to", OUT)

# %% [markdown]
# ## Exercises
#
# 1. **Thresholds.** Make a detector with `thresholds=(0.3, 0.7, 0.7)` and compare
#    `trace.counts()` with the table above. Which stage pays for the extra candidates, and do
#    the final faces change? *Hint:* time `det.refine`; R-Net's cost is proportional to the
#    number of crops it gets.
# 2. **Smallest face.** Try `min_face_size=40` and `80`. How many pyramid levels are left, and
#    how does stage 1's time change? *Hint:* the first scale is 12 / min_face_size, and the
#    largest level costs the most (it has the most pixels).
# 3. **NMS threshold.** Run `nms` on `trace.stage1_after_nms` (boxes and scores) with thresholds
#    0.3, 0.5 and 0.9 and count the survivors. *Hint:* a smaller threshold suppresses more.
# 4. **Mirror test.** Detect faces on `image[:, ::-1]` and map the boxes back with
#    `x -> W - x` (swap x1 and x2). Do you get the same face? Which landmarks swap names?
#    *Hint:* the "left eye" is the one on the left side of the image.
# 5. **Why square?** Resize a tall (non-square) box to 24 x 24 without `make_square` and look at
#    the crop. What would R-Net see? *Hint:* `crop_and_resize(image_chw, box, 24)` with
#    `box = [[200, 100, 300, 300]]` (100 px wide, 200 px tall): the width shrinks by 24/100
#    but the height by 24/200, so the face is squashed vertically, to half its height
#    relative to its width: short and wide.
# 6. **Border crops.** A box that hangs over the image border is clipped to the image, as the
#    reference Python port does (the released MATLAB code zero-pads it instead; see
#    `pipeline.detection.boxes.crop_windows`). Find such a box in `trace.stage2_input` and look at its crop.
#    *Hint:* look for `x1 < 0` or `y2 > H`.
