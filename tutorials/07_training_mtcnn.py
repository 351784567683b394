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
# # 7. Training MTCNN from scratch
#
# Tutorial 4 ran MTCNN with the weights its authors released. The authors never released how
# they trained it; here we do it ourselves, in NumPy, with the layers of tutorials 1 and 2.
# MTCNN (Zhang, Zhang, Li and Qiao, "Joint Face Detection and Alignment using Multi-task
# Cascaded Convolutional Networks", IEEE Signal Processing Letters 2016) differs from the
# Cascade-CNN of tutorial 6 in one idea: each net learns three things at once (is it a face,
# where exactly is the box, where are the five landmarks), from one trunk and one loss.
#
# 1. how one training window becomes a negative, positive, part or landmark sample, with its targets;
# 2. the multi-task loss on a tiny batch, worked out by hand: which sample feeds which head;
# 3. online hard example mining (OHEM): what it keeps and why;
# 4. where the windows come from on a WIDER FACE photo with many faces, labelled by IoU;
# 5. a short training run of P-Net on such samples, its loss terms falling;
# 6. the nets trained here against the released ones, on a portrait and on a crowd.
#
# Sections 4 to 6 need the face data kit (README: Getting the data; FACECASCADE_DATA names its
# folder); sections 1 to 3 run without it. Section 6 uses the weights that ship with the
# project, made by `facecascade train mtcnn --data DIR --out DIR`.

# %%

from dataclasses import replace

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import ohem_weights, softmax, softmax_cross_entropy_per_sample
from nets import PNET_SIZE, PNet
from pipeline.detection.boxes import apply_regression, pairwise_overlap
from pipeline.cli.demo import sample_photo
from pipeline.evaluation.evaluate import match_detections
from pipeline.data.images import load_image
from pipeline.detection.mtcnn import MTCNNDetector
from pipeline.training.mtcnn_samples import (MTCNNRecipe, build_photo_samples, describe_kinds, inside, label_windows,
                                    regression_targets, snap_to_pixels, windows_around)
from pipeline.training.photo_windows import (PhotoCounts, around_faces, large_faces, near_negative_windows,
                                    random_negative_windows)
from pipeline.training.multitask import KIND_NAMES, LANDMARK, NEGATIVE, PART, POSITIVE, multitask_loss, task_for_net
from pipeline.plots import draw_window_groups, plot_faces, plot_training_curves
from pipeline.training.samples import cut
from pipeline.training.train_mtcnn import RECIPES
from pipeline.training.loop import TrainConfig, Trainer
from pipeline.data.wider import wider_split

OUT = _tutorial.output_dir("07_training_mtcnn")
QUICK = _tutorial.QUICK

# %% [markdown]
# ## 7.1 One window, four kinds of sample
#
# A training sample is a square window of a photo, cut out and shrunk to the net's input size
# (12 x 12 for P-Net). What it teaches depends on how much it overlaps the face box, measured
# as IoU (intersection over union):
#
# | IoU with the face | kind | face label | box target | landmark target |
# |---|---|---|---|---|
# | < 0.3 | negative | 0 | - | - |
# | > 0.65 | positive | 1 | 4 offsets | - |
# | 0.4 to 0.65 | part | - | 4 offsets | - |
# | > 0.65, with annotated points | landmark | - | - | 10 values |
#
# Windows between 0.3 and 0.4 are too ambiguous to call either way and are not used. The box
# target is where the face's corners are, measured from the window's corners in window sides:
# `(fx1 - x1) / s, (fy1 - y1) / s, (fx2 - x2) / s, (fy2 - y2) / s`. That is exactly what the
# detector undoes when it moves a window onto the face (`apply_regression`, tutorial 4). A part
# sample has no face label, since it is half a face, but it still says where the face is.

# %%
# A face with a box and five points. The training data's faces are annotated by hand; to keep
# this section free of any download, we take Grace Hopper's portrait (it ships with
# matplotlib) and let the released MTCNN's box and landmarks stand in for the annotation.
photo = sample_photo()
face = MTCNNDetector().detect(photo)[0]
rng = np.random.default_rng(7)
windows = snap_to_pixels(windows_around(rng, face.box, 60, min_scale=0.6, max_scale=1.4, max_shift=0.45))
windows = windows[inside(windows, photo.shape[1], photo.shape[0])]  # a crop must be its window exactly
kinds, ious = label_windows(windows, face.box)
shown = [int(np.flatnonzero(kinds == k)[0]) for k in (POSITIVE, PART, NEGATIVE) if np.any(kinds == k)]
boxed = [i for i in shown if kinds[i] != NEGATIVE]  # a negative has no box target: no face to point at
targets = regression_targets(windows[boxed], face.box)
for i in shown:
    target = f"box target {np.round(targets[boxed.index(i)], 3)}" if i in boxed else "no box target"
    print(f"{KIND_NAMES[kinds[i]]:>8}: window {windows[i].astype(int)}, IoU {ious[i]:.2f}, {target}")
# the targets bring every positive and part window back onto the face box
assert np.allclose(apply_regression(windows[boxed], targets), face.box)

colors = {POSITIVE: "tab:green", PART: "tab:orange", NEGATIVE: "tab:red"}
fig = Figure(figsize=(11, 4.2))
ax = fig.add_subplot(1, 1 + len(shown), 1)
ax.imshow(photo)
ax.add_patch(Rectangle(face.box[:2], *(face.box[2:] - face.box[:2]), fill=False, color="white", lw=2, ls="--"))
ax.plot(*face.landmarks.T, "o", color="cyan", ms=4)
for i in shown:
    x1, y1, x2, y2 = windows[i]
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colors[kinds[i]], lw=2))
    if i not in boxed:
        continue
    # the box target drawn as arrows from the window's corners to the face's corners
    for (wx, wy), (fx, fy) in (((x1, y1), face.box[:2]), ((x2, y2), face.box[2:])):
        ax.annotate("", (fx, fy), (wx, wy), arrowprops={"arrowstyle": "->", "color": colors[kinds[i]]})
ax.set_title("face box (dashed), windows, box targets of the positive and part", fontsize=9)
ax.axis("off")
crops = cut(photo, windows[shown], PNET_SIZE)[0]  # what P-Net sees: 12 x 12 pixels
for k, (i, crop) in enumerate(zip(shown, crops), start=2):
    ax = fig.add_subplot(1, 1 + len(shown), k)
    ax.imshow(crop)
    ax.set_title(f"{KIND_NAMES[kinds[i]]}, IoU {ious[i]:.2f} (12 x 12 px)", color=colors[kinds[i]], fontsize=9)
    ax.axis("off")
fig.tight_layout()
_tutorial.save(fig, OUT / "sample_kinds.png")

# %% [markdown]
# ## 7.2 The multi-task loss, worked out on four samples
#
# One batch holds all four kinds, and each kind switches its loss terms on or off (the paper's
# sample-type indicator):
#
#     loss = a_face * L_face + a_box * L_box + a_landmarks * L_landmarks
#
# * `L_face`: softmax cross-entropy, over the negatives and positives only;
# * `L_box`: squared distance of the 4 offsets, averaged over the positives and parts;
# * `L_landmarks`: squared distance of the 10 values, averaged over the landmark samples;
# * `(a_face, a_box, a_landmarks)` = (1, 0.5, 0.5) for P-Net and R-Net, (1, 0.5, 1) for O-Net,
#   whose landmarks are the ones the detector reports.
#
# A label a kind does not have is simply NaN: it is never read. Here is a batch of one sample of
# each kind, with made-up net outputs, and the three terms computed by hand.

# %%
kind = np.array([NEGATIVE, POSITIVE, PART, LANDMARK])
box_targets = np.full((4, 4), np.nan)
box_targets[1] = [0.05, -0.10, 0.00, 0.08]
box_targets[2] = [0.30, 0.20, 0.10, 0.25]
landmark_targets = np.full((4, 10), np.nan)
landmark_targets[3] = [0.3, 0.7, 0.5, 0.35, 0.65, 0.35, 0.35, 0.55, 0.75, 0.75]
rng = np.random.default_rng(0)
outputs = {"face": rng.normal(size=(4, 2)), "box": rng.normal(0, 0.1, size=(4, 4)),
           "landmarks": rng.uniform(0.2, 0.8, size=(4, 10))}
alpha = (1.0, 0.5, 0.5)

# by hand: each term only over the samples of its kinds
p_face = softmax(outputs["face"])[:, 1]
by_hand_face = np.mean([-np.log(1 - p_face[0]), -np.log(p_face[1])])   # samples 0 and 1
by_hand_box = np.mean([np.sum((outputs["box"][i] - box_targets[i]) ** 2) for i in (1, 2)])  # samples 1, 2
by_hand_landmarks = np.sum((outputs["landmarks"][3] - landmark_targets[3]) ** 2)                # sample 3
loss, douts, terms = multitask_loss(outputs, kind, box_targets, landmark_targets, alpha=alpha, ohem_keep=1.0)
print(f"L_face {terms['face']:.4f} (by hand {by_hand_face:.4f}), L_box {terms['box']:.4f} "
      f"(by hand {by_hand_box:.4f}), L_landmarks {terms['landmarks']:.4f} (by hand {by_hand_landmarks:.4f})")
assert np.isclose(terms["face"], by_hand_face) and np.isclose(terms["box"], by_hand_box)
assert np.isclose(terms["landmarks"], by_hand_landmarks)
assert np.isclose(loss, by_hand_face + 0.5 * by_hand_box + 0.5 * by_hand_landmarks)

# %% [markdown]
# The gradient shows the masks at work: each head gets a gradient only from the
# samples that have its label. A part sample teaches the box head and nothing else; a landmark
# sample teaches only the landmark head.

# %%
reach = np.array([[np.abs(douts[h][i]).sum() for h in ("face", "box", "landmarks")] for i in range(4)])
fig = Figure(figsize=(5.5, 3.4))
ax = fig.add_subplot()
ax.imshow(reach > 0, cmap="Greens", vmin=0, vmax=1.4)
for i in range(4):
    for j in range(3):
        ax.text(j, i, f"{reach[i, j]:.2f}", ha="center", va="center", fontsize=9)
ax.set_xticks(range(3), ["face", "box", "landmarks"])
ax.set_xlabel("head")
ax.set_yticks(range(4), [KIND_NAMES[k] for k in kind])
ax.set_title("sum of |gradient| each sample sends to each head", fontsize=10)
fig.tight_layout()
_tutorial.save(fig, OUT / "loss_masks.png")
assert ((reach > 0) == np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], bool)).all()

# %% [markdown]
# ## 7.3 Online hard example mining
#
# Most windows of a photo are obviously not faces. After a few hundred steps the net classifies
# them with near certainty, and their losses are tiny; averaged in, they water down the gradient
# of the windows it still gets wrong. MTCNN's answer (section II.C of the paper): in each batch,
# sort the classification losses of the negatives and positives and keep only the hardest 70%
# for the backward pass. It costs nothing (the losses are computed anyway), and it follows the
# net as it learns: what is hard changes from batch to batch.

# %%
rng = np.random.default_rng(3)
logits = np.stack([np.zeros(20), rng.normal(0, 3, 20)], axis=1)
labels = (rng.random(20) < 0.3).astype(np.int64)
per_sample, _ = softmax_cross_entropy_per_sample(logits, labels)
kept = ohem_weights(per_sample, keep=0.7)
order = np.argsort(-per_sample)
print(f"kept {int(kept.sum())} of {len(kept)}: the losses above {per_sample[kept == 0].max():.3f}")
assert kept.sum() == 14 and per_sample[kept == 1].min() >= per_sample[kept == 0].max()

fig = Figure(figsize=(7, 3))
ax = fig.add_subplot()
ax.bar(range(1, 21), per_sample[order], color=np.where(kept[order] == 1, "tab:blue", "lightgray"))
ax.set_xticks(range(1, 21))  # one tick per sample: whole numbers
ax.set_xlabel("samples of one batch, hardest first (rank)")
ax.set_ylabel("cross-entropy")
ax.set_title("OHEM keeps the hardest 70% (blue); the easy 30% (gray) get no gradient", fontsize=10)
_tutorial.save(fig, OUT / "ohem.png")

# %% [markdown]
# ## 7.4 Where the samples come from: a photo with many faces
#
# The windows above were drawn about one face. The nets are trained on WIDER FACE photos
# (crowds, meetings, sports, streets), where a window must learn what is *not* a face from
# the same kind of photo: hands, hair, collars, the crowd behind. On one training photo, MTCNN's
# recipe (`pipeline/training/photo_windows.py`) draws:
#
# * random squares of every size whose IoU with *every* labelled box is below 0.3: negatives;
# * squares next to each face, below 0.3 with every box too: negatives that touch a face;
# * squares about each face of 20 px or more, labelled by IoU with the face they overlap most:
#   positives above 0.65, parts from 0.4, each with the offsets from the square to that face.

# %%
# From here on the tutorial needs the face data kit (sections 7.1 to 7.3 ran without it).
DATA = _tutorial.data_kit()  # FACECASCADE_DATA, else shared/data beside the project
photos = wider_split(DATA, "train")
photo = next(p for p in photos if 3 <= len(large_faces(p.faces, 20)) <= 8)  # a photo with a few faces
image = load_image(photo.path)
H, W = image.shape[:2]
rng = np.random.default_rng(0)
big = large_faces(photo.faces, 20)
negatives = random_negative_windows(rng, W, H, photo.boxes, 25)
beside = near_negative_windows(rng, W, H, big, photo.boxes, 2)
about, overlap, target = around_faces(rng, W, H, big, 6)
positive, part = overlap > 0.65, (overlap >= 0.4) & (overlap <= 0.65)
fig = Figure(figsize=(11, 7.5))
ax = fig.add_subplot(1, 1, 1)
ax.imshow(image)
draw_window_groups(ax, [(photo.faces, "white", "labelled faces"), (negatives, "red", "random negatives"),
                        (beside, "magenta", "negatives beside faces"), (about[part], "orange", "parts"),
                        (about[positive], "lime", "positives")])
ax.set_axis_off()
ax.set_title(f"{photo.name}: {len(photo.faces)} labelled faces, {len(big)} of them 20 px or more", fontsize=10)
fig.tight_layout()
_tutorial.save(fig, OUT / "wider_windows.png")
print(f"{len(negatives)} random negatives, {len(beside)} beside faces; about the faces: {positive.sum()} positives, "
      f"{part.sum()} parts, {len(about) - positive.sum() - part.sum()} between 0.3 and 0.4 (not used)")
assert np.all(pairwise_overlap(np.concatenate([negatives, beside]), photo.boxes).max(axis=1) < 0.3)

# %% [markdown]
# ## 7.5 Training P-Net on real samples
#
# `build_photo_samples` makes every kind this way from the training photos, adds landmark
# windows of faces with five annotated points (cut from the photo turned by a few degrees; the
# points turn with it) and random windows of face-free photos. Then the same training loop as in
# tutorial 6 runs, with the multi-task task; it mirrors half the samples each epoch, and a
# mirrored sample's targets are mirrored too (the left eye becomes the right).

# %%
recipe = MTCNNRecipe(PhotoCounts(max_photos=80 if QUICK else 250), max_landmark_faces=2000 if QUICK else 4000,
                     max_free_photos=40 if QUICK else 150)
train = build_photo_samples("pnet", "train", DATA, recipe, seed=0)
val = build_photo_samples("pnet", "val", DATA, replace(recipe, photo=replace(recipe.photo, max_photos=20)), seed=0)
print(f"training samples: {describe_kinds(train)}")
print(f"validation samples: {describe_kinds(val)}")

net = PNet(rng=np.random.default_rng(0), landmarks=True)
# P-Net first learns "everything is a negative" (the face loss sits near 0.67 for a thousand
# steps or so) before faces and non-faces come apart, so even the short run takes ~1,500 steps.
config = TrainConfig(epochs=6 if QUICK else 8, batch_size=64, lr=0.005, milestones=(5 if QUICK else 6,))
trainer = Trainer(net, task_for_net("pnet"), train, val, config, OUT / "pnet_run", name="P-Net", progress=False)
if trainer.checkpoint_path.exists():
    trainer.checkpoint_path.unlink()  # start afresh each time the tutorial runs
history = trainer.run()
terms = {k: v for k, v in history.items() if k.startswith("val") and k.endswith("loss") and k != "val loss"}
_tutorial.save(plot_training_curves(terms, title="P-Net: each validation loss term, epoch by epoch"),
               OUT / "loss_terms.png")
for name, values in terms.items():
    print(f"{name}: {values[0]:.4f} after epoch 1, {values[-1]:.4f} after epoch {len(values)}")
assert terms["val face loss"][-1] < terms["val face loss"][0] and terms["val box loss"][-1] < terms["val box loss"][0]

# %% [markdown]
# The face and box terms fall; the landmark term barely moves in so short a run (its head learns
# from a few thousand faces, and the trunk it shares is busy learning faces from non-faces). Over
# the full run (30 epochs on about 220,000 samples) all three fall.

# %% [markdown]
# The full recipe (`facecascade train mtcnn`) goes on from here, with these windows per photo:

# %%
full = RECIPES["pnet"]
print(f"P-Net, per training photo: {full.photo.random_negatives} random negatives, {full.photo.near_negatives} "
      f"beside each face, up to {full.photo.positives} positives and {full.photo.parts} parts per face of "
      f"{full.photo.min_face:g} px or more; {full.landmarks_per_face} landmark windows per face with points; "
      f"{full.free_negatives_per_photo} windows per face-free photo")

# %% [markdown]
# Then R-Net learns on 24 x 24 samples plus *hard examples*, the windows the trained P-Net lets
# through on the training photos, labelled by IoU just like above; then O-Net on the windows
# that P-Net and R-Net together let through. Each net's threshold lets a fixed small share of
# its validation negatives through (a budget on the next net's work); O-Net's is then chosen so
# that at most 0.1 false positives per validation face-free photo remain.
#
# ## 7.6 The nets trained here against the released ones
#
# The project ships the three nets that command trained, in NumPy, next to the released ones.
# `MTCNNDetector(weights="scratch")` loads them with their own thresholds (chosen on the
# validation data, not copied from the paper).

# %%
hopper = sample_photo()  # Grace Hopper's portrait, which ships with matplotlib
released = MTCNNDetector()
scratch = MTCNNDetector(weights="scratch")
print(scratch)
fig = Figure(figsize=(10, 5.5))
for k, (name, detector) in enumerate((("released weights", released), ("trained here", scratch)), start=1):
    faces = detector.detect(hopper)
    plot_faces(hopper, faces, ax=fig.add_subplot(1, 2, k), title=f"{name}: {len(faces)} face(s)")
    print(f"{name}: " + "; ".join(f"score {f.score:.3f}, box {np.round(f.box).astype(int)}" for f in faces))
    assert len(faces) >= 1
fig.tight_layout()
_tutorial.save(fig, OUT / "scratch_vs_released.png")

# %% [markdown]
# A portrait is easy. A crowd is the real test: a validation photo of WIDER FACE (never trained
# on), its labelled faces of 20 px or more in white, each detector's faces in green, and how
# many of those labelled faces each one found (IoU >= 0.5).

# %%
crowd = max(wider_split(DATA, "val")[:40], key=lambda p: len(large_faces(p.faces, 20)))
crowd_image = load_image(crowd.path)
labelled = large_faces(crowd.faces, 20)
fig = Figure(figsize=(12, 5.5), layout="constrained")
for k, (name, detector) in enumerate((("released weights", released), ("trained here", scratch)), start=1):
    faces = detector.detect(crowd_image)
    found = match_detections(labelled, [f.box for f in faces], [f.score for f in faces]).sum()
    ax = fig.add_subplot(1, 2, k)
    plot_faces(crowd_image, faces, ax=ax, title=f"{name}: {len(faces)} faces, {found} of the {len(labelled)} "
                                                 "labelled faces of 20 px or more")
    for x1, y1, x2, y2 in labelled:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white", lw=0.8, ls="--"))
    print(f"{name}: {len(faces)} faces; found {found} of {len(labelled)} labelled faces of 20 px or more")
_tutorial.save(fig, OUT / "crowd_scratch_vs_released.png")

# %% [markdown]
# On the whole data kit (`facecascade evaluate --weights scratch`), the README's table puts the
# two side by side: the WIDER FACE benchmark's average precision (easy, medium, hard), recall on
# the validation faces and the labelled photos, false positives on held-out face-free photos,
# and the landmark error (mean distance to the annotated points, in inter-ocular distances).
#
# ## Exercises
#
# 1. **No hard example mining.** Train 7.5 again with `task_for_net("pnet", ohem_keep=1.0)`.
#    How do the validation face loss and the threshold change? *Hint:* compare
#    `history["val face loss"]` and `history["val threshold"]` of the two runs.
# 2. **No part samples.** Drop kind 2 from the training set,
#    `train.take(np.flatnonzero(train.labels["kind"] != PART))`, and train again. Does the box
#    error on the validation positives (`history["val box error"]`) get worse? *Hint:* a part
#    sample shows the box head half a face and where the rest of it is.
# 3. **One task less.** Give the landmark term weight 0, `MultiTaskTask(alpha=(1, 0.5, 0))`
#    (from `pipeline.training.multitask`). Does the face accuracy change? *Hint:* the paper argues that
#    the tasks help each other; with so few samples the difference may be within the noise, so
#    try two seeds.
# 4. **Thresholds.** Run `MTCNNDetector(weights="scratch", thresholds=(0.2, 0.5, 0.9))` on the
#    photo of 7.6 with `trace=True`. How many windows pass each stage? *Hint:* `print(trace)`.
