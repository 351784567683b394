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
# # 6. Training a cascade: Cascade-CNN in NumPy
#
# Tutorials 1 to 5 used nets that somebody else trained. Here the hand-written backward passes
# of tutorial 2 learn something: the six nets of Cascade-CNN (Li, Lin, Shen, Brandt and Hua,
# "A Convolutional Neural Network Cascade for Face Detection", CVPR 2015), trained on real faces.
#
# 1. one training step of the 12-net by hand: mini-batch, forward, loss, backward, and the SGD update
#    written out in NumPy, checked against the optimizer's;
# 2. the shared training loop on real face crops, loss and accuracy falling;
# 3. choosing a threshold from a ROC curve: keep 99% of the faces, or let 3% of the non-faces pass;
# 4. the 45 calibration patterns, drawn on a face, and a window corrected by the calibration net;
# 5. hard negatives: the windows of face-free photos, and of a WIDER FACE photo of people, that
#    the first stage lets through, labelled by IoU;
# 6. the whole trained cascade, stage by stage, on a photo.
#
# It needs the face data kit (README: Getting the data; FACECASCADE_DATA names its folder).
# Sections 4 to 6 use the weights that ship with the project, made by
# `facecascade train cascade --data DIR --out DIR`.

# %%

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from layers import SGD, softmax, softmax_cross_entropy
from pipeline.fast.replicas import Replicas
from nets import Net12
from nets.cascade_weights import shipped_cascade
from pipeline.detection.boxes import iou
from pipeline.detection.calibration import PATTERNS, calibrate, perturb_boxes
from pipeline.detection.cascade import CascadeDetector
from pipeline.training.cascade_samples import SampleCounts, build_samples, mined_negatives, mined_windows
from pipeline.data.datasets import negative_split
from pipeline.detection.crops import crop_and_resize
from pipeline.data.datasets import face_split
from pipeline.data.images import load_image, to_chw_float
from pipeline.training.photo_windows import NEGATIVE_IOU, max_overlap
from pipeline.plots import draw_window_groups, plot_counts, plot_roc, plot_stages, plot_training_curves
from pipeline.training.samples import face_window
from pipeline.training.train_cascade import NEGATIVE_BUDGET, task_for
from pipeline.training.loop import TrainConfig, Trainer, budget_threshold, predict, recall_threshold, to_input
from pipeline.data.wider import wider_split

OUT = _tutorial.output_dir("06_training_a_cascade")
QUICK = _tutorial.QUICK
DATA = _tutorial.data_kit()  # FACECASCADE_DATA, else shared/data beside the project

# %% [markdown]
# ## 6.1 One training step by hand
#
# A sample is a 12 x 12 RGB window and a label: 1 for a face, 0 for anything else. We make a few
# thousand from the data kit: face windows moved a little (the detector's windows never sit
# exactly on a face), and windows of face-free photos and of the face photos away from the face.
# `build_samples` does it deterministically from a seed (`pipeline/training/cascade_samples.py`).

# %%
counts = SampleCounts(positives_per_face=2, face_negatives_per_face=1, negatives_per_photo=20,
                      max_faces=200 if QUICK else 1500, max_photos=20 if QUICK else 150)
train = build_samples("net12", "train", DATA, counts, seed=0)
val = build_samples("net12", "val", DATA, counts, seed=0)
labels = train.labels["label"]
print(f"training samples: {len(train)} ({(labels == 1).sum()} faces), images {train.images.shape} uint8")
print(f"validation samples: {len(val)}")

# %% [markdown]
# One step is four lines. The input is normalized as (x - 127.5) / 128 and laid out NCHW; the
# loss is softmax cross-entropy, whose gradient with respect to the logits is
# (p - onehot) / N (tutorial 2); `backward` sends it through every layer and stores each
# parameter's gradient; SGD with momentum moves the weights a small step against it.

# %%
net = Net12(rng=np.random.default_rng(0))
print(net.summary())
optimizer = SGD(net.trainable_parameters(), lr=0.05, momentum=0.9)
batch = train.take(np.arange(64))
x, y = to_input(batch.images), batch.labels["label"]      # (64, 3, 12, 12) float32, (64,) int

losses = []
for step in range(5):
    logits = net.forward(x)                               # (64, 2)
    loss, dlogits = softmax_cross_entropy(logits, y)      # float, (64, 2)
    net.backward(dlogits)                                 # fills every param.grad
    optimizer.step()                                      # the only line that changes weights
    losses.append(loss)
    print(f"step {step}: loss {loss:.4f}, accuracy {np.mean(logits.argmax(1) == y):.2f}")
assert losses[-1] < losses[0], "five steps on the same batch must lower its loss"

# %% [markdown]
# `optimizer.step()` is SGD with momentum. Written out in NumPy, for every parameter w with
# gradient g and velocity v (zero at the start, one per parameter):
#
#     g = g + weight_decay * w      (decay pulls the weights toward 0; 0 here)
#     v = momentum * v - lr * g     (a running sum of the past steps, each shrunk by 0.9)
#     w = w + v
#
# One more step, by hand and by the optimizer, from the same state:

# %%
logits = net.forward(x)
net.backward(softmax_cross_entropy(logits, y)[1])
by_hand = {}
for p, v in zip(optimizer.params, optimizer.velocity):
    g = p.grad + (optimizer.weight_decay * p.value if p.decay else 0.0)
    by_hand[id(p)] = p.value + (optimizer.momentum * v - optimizer.lr * g)
optimizer.step()
for name, p in net.named_parameters():
    if id(p) in by_hand:
        print(f"{name:8s} largest difference from the step by hand: {np.abs(p.value - by_hand[id(p)]).max():.1e}")
        assert np.allclose(p.value, by_hand[id(p)], rtol=0, atol=1e-6)

# %% [markdown]
# ## 6.2 The training loop on real faces
#
# `pipeline.training.loop.Trainer` repeats that step over shuffled mini-batches (half of them
# mirrored), runs a validation pass after each epoch, writes a checkpoint and the training
# curves. It is the same loop that `facecascade train cascade` runs for all six nets.

# %%
config = TrainConfig(epochs=3 if QUICK else 8, batch_size=64, lr=0.02, milestones=(3 if QUICK else 6,))
net = Net12(rng=np.random.default_rng(0))
trainer = Trainer(net, task_for("net12"), train, val, config, OUT / "net12_run", name="12-net", progress=False)
if trainer.checkpoint_path.exists():
    trainer.checkpoint_path.unlink()  # start afresh each time the tutorial runs
history = trainer.run()
shown = {k: v for k, v in history.items() if "threshold" not in k and "passed" not in k}
_tutorial.save(plot_training_curves(shown, title="12-net on real face crops"), OUT / "curves.png")
assert history["train loss"][-1] < history["train loss"][0]

# %% [markdown]
# On two cores the loop runs each batch as two halves, through two copies ("replicas") of the
# net in two processes, as training on several GPUs does (`pipeline/fast/replicas.py`). The loss
# still sees the whole batch; the replicas' parameter gradients are added. That is exact
# arithmetic, not an approximation: the loss is a mean over the batch, so its gradient is a sum
# over the samples, and a sum over the batch is the sum over its two halves. Only the float32
# rounding of the two partial sums differs:

# %%
x, y = to_input(batch.images), batch.labels["label"]
logits = net.forward(x)
net.backward(softmax_cross_entropy(logits, y)[1])
whole = {name: p.grad.copy() for name, p in net.named_parameters()}
with Replicas(net) as halves:                             # two copies, 32 samples each
    logits = halves.forward(x)                            # (64, 2), as net.forward(x)
    halves.backward(softmax_cross_entropy(logits, y)[1])  # fills net's param.grad with the sum
for name, p in net.named_parameters():
    print(f"{name:8s} largest difference {np.abs(p.grad - whole[name]).max():.1e} "
          f"(gradient up to {np.abs(whole[name]).max():.1e})")
    assert np.allclose(p.grad, whole[name], rtol=1e-4, atol=1e-6 * np.abs(whole[name]).max())

# %% [markdown]
# ## 6.3 A threshold that keeps 99% of the faces
#
# The 12-net only has to throw away the windows that are *clearly* not faces; the later nets
# clean up. So its threshold is not 0.5: it is the highest probability that still keeps 99% of
# the validation faces (Li et al., section 3.3). The ROC curve shows the price: the share of
# non-faces that pass at each threshold.

# %%
probs = softmax(predict(net, val.images))[:, 1]  # the face probability of each window
faces = val.labels["label"] == 1
threshold = recall_threshold(probs[faces], 0.99)
passed = np.mean(probs[~faces] >= threshold)
print(f"threshold {threshold:.4f}: keeps {np.mean(probs[faces] >= threshold):.1%} of the faces, "
      f"lets {passed:.1%} of the non-faces through")
order = np.argsort(-probs)
recall = np.cumsum(faces[order]) / faces.sum()
false_rate = np.cumsum(~faces[order]) / (~faces).sum()
fig = plot_roc({"12-net": (false_rate, recall)}, xlabel="share of validation non-faces passing",
               title="choosing the 12-net's threshold")
ax = fig.axes[0]
ax.plot([passed], [np.mean(probs[faces] >= threshold)], "o", color="red")
ax.annotate(f"threshold {threshold:.3f}", (passed, 0.99), textcoords="offset points", xytext=(10, -20))
# the rule `facecascade train` uses (next paragraph): at most 3% of the non-faces pass
budget = budget_threshold(probs[~faces], NEGATIVE_BUDGET["net12"])
kept = np.mean(probs[faces] >= budget)
ax.plot([np.mean(probs[~faces] >= budget)], [kept], "s", color="purple")
ax.annotate(f"budget {budget:.3f}", (np.mean(probs[~faces] >= budget), kept), textcoords="offset points",
            xytext=(10, -15))
print(f"budget threshold {budget:.4f}: keeps {kept:.1%} of the faces, lets "
      f"{np.mean(probs[~faces] >= budget):.1%} of the non-faces through")
_tutorial.save(fig, OUT / "threshold_roc.png")

# %% [markdown]
# The paper's rule fits faces like these crops. On photos of crowds, where many faces are
# blurred, small or half hidden, keeping 99% of them let a large share of all windows through,
# and the next stage (and the detector's time) pays for every one. So `facecascade train`
# turns the rule around and sets a *budget*: the threshold that lets at most 3% of the
# validation non-faces through (the purple square, `pipeline.training.loop.budget_threshold`), and
# it reports the share of faces that keeps.

# %% [markdown]
# ## 6.4 Calibration: 45 patterns and one window corrected
#
# The 12-net's windows are 4 pixels apart on each pyramid level, so they rarely sit right on a
# face. A calibration net looks at a window and answers which of 45 changes (scale
# s in {0.83, 0.91, 1.0, 1.10, 1.21}, shift x, y in {-0.17, 0, +0.17} of the size) separates it
# from the face. A training crop for pattern n is cut at top-left (x + x_n w, y + y_n h) with
# size (s_n w, s_n h); the correction moves the window to (x - x_n w / s_n, y - y_n h / s_n)
# with size (w / s_n, h / s_n), which gives the face back exactly. Here are all 45 crops of one
# face, one panel per scale:

# %%
face = face_split(DATA, "val")[0]
photo = load_image(face.path)
window = face_window(face.box[None])
side = window[0, 2] - window[0, 0]
shift_colours = [matplotlib.colormaps["tab10"](i) for i in range(9)]  # one colour per (x, y) shift
fig = Figure(figsize=(13, 4.0), layout="constrained")
for k, ax in enumerate(fig.subplots(1, 5)):
    ax.imshow(photo, extent=(0, photo.shape[1], photo.shape[0], 0))
    x1, y1, x2, y2 = window[0]
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2.0, color="white", ls="--",
                           label="the face window"))
    for n in range(9 * k, 9 * k + 9):
        x1, y1, x2, y2 = perturb_boxes(window, np.array([n]))[0]
        s_n, x_n, y_n = PATTERNS[n]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, color=shift_colours[n - 9 * k],
                               label=f"x {x_n:+.2f}, y {y_n:+.2f}"))
    ax.set_title(f"scale {PATTERNS[9 * k, 0]:.2f}: 9 shifts", fontsize=10)
    ax.set_axis_off()
handles, labels = fig.axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
fig.suptitle(f"the 45 calibration patterns on one face window ({side:.0f} x {side:.0f} px, white dashed) "
             f"of an {photo.shape[1]} x {photo.shape[0]} px photo")
_tutorial.save(fig, OUT / "calibration_patterns.png")

# %% [markdown]
# Now a window that is too large and too far right, the trained 12-calibration net's 45
# probabilities, and the corrected window: the average of the patterns above 0.1.

# %%
nets = shipped_cascade()
off = perturb_boxes(window, np.array([9 * 3 + 3 * 2 + 1]))   # scale 1.10, shifted right
patch, _ = crop_and_resize(to_chw_float(photo), off.astype(np.float32), 12)
cal_probs = softmax(nets.cal12.forward((patch - 127.5) / 128))
corrected = calibrate(off, cal_probs)
print(f"IoU with the face window: off window {iou(window[0], off)[0]:.2f}, corrected {iou(window[0], corrected)[0]:.2f}")
print("top patterns (s, x, y, p):")
for n in np.argsort(-cal_probs[0])[:4]:
    print(f"  {PATTERNS[n]}  p = {cal_probs[0, n]:.3f}")
fig = Figure(figsize=(4, 4), layout="constrained")
ax = fig.subplots()
ax.imshow(photo, extent=(0, photo.shape[1], photo.shape[0], 0))
for box, color, name in ((window[0], "white", "face window"), (off[0], "red", "off window"),
                         (corrected[0], "lime", "corrected")):
    ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, lw=3.0 if color == "white" else 1.5,
                           color=color, label=name))
ax.legend(loc="lower left", fontsize=8)
ax.set_title("the corrected window (lime) lies on the face window (white)", fontsize=9)
ax.set_axis_off()
_tutorial.save(fig, OUT / "calibrated_window.png")

# %% [markdown]
# ## 6.5 Hard negatives
#
# Random windows of face-free photos are mostly easy: sky, walls. The 24-net is trained on the
# hard ones, the windows that the trained 12-net, 12-calibration net and NMS let through on the
# training face-free photos (Li et al., section 3.3). These fooled the first stage:

# %%
detector = CascadeDetector(nets=nets)
photos = negative_split(DATA, "train")[: 3 if QUICK else 10]
hard = mined_negatives(np.random.default_rng(0), detector, photos, 24, per_photo=12, stage=1)
print(f"{len(hard)} hard negatives from {len(photos)} face-free photos")
shown = hard.images[:48]
columns = 12
fig = Figure(figsize=(columns * 0.9, 0.9 * -(-len(shown) // columns) + 0.4), layout="constrained")
for ax, image in zip(fig.subplots(-(-len(shown) // columns), columns).ravel(), shown):
    ax.imshow(image)
for ax in fig.axes:
    ax.set_axis_off()
fig.suptitle("windows of face-free photos that pass the 12-net stage (24 x 24 px each)")
_tutorial.save(fig, OUT / "hard_negatives.png")

# %% [markdown]
# Face-free photos cannot show the hardest background of all: the rest of a photo *with* people
# (hands, collars, hair, the crowd behind). On a WIDER FACE training photo, the windows the first
# stage passes are labelled by their IoU with every labelled box: below 0.3 they are negatives
# for the 24-net (red); those on a face (IoU >= 0.5 with a face, green) are not; the ones in
# between are left out (`pipeline.training.cascade_samples.build_photo_samples` does this on every
# training photo).

# %%
wider_photo = next(p for p in wider_split(DATA, "train") if len(p.faces) >= 6)
people = load_image(wider_photo.path)
passed = mined_windows(detector, people, stage=1)
overlap = max_overlap(passed, wider_photo.boxes)
fig = Figure(figsize=(11, 7.5))
ax = fig.add_subplot(1, 1, 1)
ax.imshow(people)
draw_window_groups(ax, [(wider_photo.faces, "white", "labelled faces"),
                        (passed[overlap < NEGATIVE_IOU], "red", "hard negatives (IoU < 0.3 with every box)"),
                        (passed[overlap >= 0.5], "lime", "on a face (IoU >= 0.5)")], linewidth=1.0)
ax.set_axis_off()
ax.set_title(f"{wider_photo.name}: {len(passed)} windows pass the 12-net stage", fontsize=10)
fig.tight_layout()
_tutorial.save(fig, OUT / "hard_negatives_people.png")
print(f"{len(passed)} windows pass: {int(np.sum(overlap < NEGATIVE_IOU))} hard negatives, "
      f"{int(np.sum(overlap >= 0.5))} on a face")

# %% [markdown]
# ## 6.6 The trained cascade on a photo
#
# 12-net scan, 12-cal, NMS; 24-net, 24-cal, NMS; 48-net, global NMS, 48-cal. Each stage throws
# away most of what reaches it:

# %%
import skimage.data  # noqa: E402  (the example photo; scikit-image comes with the project's test extra)

image = skimage.data.astronaut()
faces, trace = CascadeDetector().detect(image, trace=True)
for step, n in trace.counts():
    print(f"{step:40s} {n:6d}")
_tutorial.save(plot_stages(trace), OUT / "cascade_stages.png")
_tutorial.save(plot_counts(trace), OUT / "cascade_counts.png")

# %% [markdown]
# Sometimes a second, smaller box comes back inside a face (a window on the eyes and nose that
# the 48-net also scores high). The last NMS compares boxes by IoU, intersection over *union*:
# a box lying wholly inside one four times its area has IoU 0.25, under the 0.3 it removes at,
# so both stay. MTCNN's last NMS divides by the *smaller* box instead ("Min", tutorial 4), which
# gives 1.0 for a box inside another and removes it. For each pair of boxes found here:

# %%
boxes = np.array([f.box for f in faces]).reshape(-1, 4)
for i in range(len(boxes)):
    for j in range(i + 1, len(boxes)):
        union = iou(boxes[i], boxes[j][None])[0]
        smaller = iou(boxes[i], boxes[j][None], mode="min")[0]
        print(f"faces {i} and {j}: IoU {union:.2f} (the last NMS, before 48-cal moved them a little, removes "
              f"from 0.3), intersection over the smaller {smaller:.2f}")
if len(boxes) < 2:
    print(f"{len(boxes)} face found: no pair to compare on this photo")

# %% [markdown]
# ## Exercises
#
# 1. **Learning rate.** Run 6.1 with `lr=0.5` and `lr=0.001`. What happens to the loss?
#    *Hint:* too large a step overshoots (the loss grows or jumps), too small barely moves.
# 2. **No mirroring.** Train 6.2 with a task whose `mirror_map` is None. Does validation
#    accuracy change? *Hint:* `ClassifierTask(2, positive_class=1)`; with few faces, mirroring
#    doubles what the net sees.
# 3. **Colour.** Most face-free photos are grayscale. Build the samples with
#    `pipeline.training.samples.match_colour(..., gray_share=0)` for the faces and check how many
#    colour non-faces pass the 12-net. *Hint:* a net can learn that "colour means face".
# 4. **A stricter first stage.** Use `CascadeDetector(thresholds=(0.5, ...))` on the photo of 6.6.
#    How many windows reach the 24-net, and is the face still found? *Hint:* compare
#    `trace.counts()`.
# 5. **Calibration threshold.** Call `calibrate(off, cal_probs, threshold=0.3)`. Which patterns
#    remain, and how does the corrected window move? *Hint:* with no pattern above the threshold
#    the window is returned unchanged.
