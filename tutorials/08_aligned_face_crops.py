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
# # 8. Aligned face crops: turning a face upright
#
# A detector says *where* a face is. A face **recognition** net (ArcFace/InsightFace and its
# kin) wants more: the face cut out at a fixed size, upright, with its eyes, nose and mouth
# always at the same places, because that is how every face it was trained on looked. MTCNN's
# five landmarks are enough to get there in two steps:
#
# 1. **fit** the similarity transform (rotation, uniform scale, translation) that moves the five
#    landmarks as close as possible, in least squares, onto a fixed **template** of five points
#    (Umeyama's closed form, IEEE TPAMI 13(4), 1991);
# 2. **warp**: for every pixel of the crop, map it back into the photo with the inverse
#    transform and read the photo there by bilinear interpolation.
#
# `pipeline.extract_faces(image, faces)` does both. Here we take it apart. Coordinates are
# those of `pipeline/detection/boxes.py`: x is the column, y the row, and pixel (r, c) covers the square
# [c, c+1) x [r, r+1), so its centre is at (c + 0.5, r + 0.5). A transform is a (2, 3) matrix
# [A | t] that moves a point p = (x, y) to A p + t.

# %%
import numpy as np
import skimage.data
from matplotlib.figure import Figure
from PIL import Image

from pipeline import tutorial_support as _tutorial  # figure folder, quick mode, data kit
from pipeline.detection.align import (ARCFACE_TEMPLATE_112, LANDMARK_NAMES, alignment_matrix, apply_transform,
                            extract_faces, face_template, similarity_transform, warp_affine,
                            warp_affine_naive)
from pipeline.cli.demo import sample_photo
from pipeline.detection.mtcnn import MTCNNDetector
from pipeline.plots import draw_boxes

OUT = _tutorial.output_dir("08_aligned_face_crops")
QUICK = _tutorial.QUICK
det = MTCNNDetector()

# %% [markdown]
# ## 8.1 Why a box is not enough
#
# Turn the astronaut photo by 20 degrees and detect. The box is found, but a box has no
# direction: the square crop around it (what facenet-pytorch returns) keeps the tilt. The
# landmarks do know the direction: the line from the left eye to the right eye is tilted too.

# %%
astronaut = skimage.data.astronaut()
turned = np.asarray(Image.fromarray(astronaut).rotate(20, resample=Image.BILINEAR, expand=True))
face = det.detect(turned)[0]
left_eye, right_eye = face.landmarks[0], face.landmarks[1]
dx, dy = right_eye - left_eye
eye_line = np.degrees(np.arctan2(dy, dx))
print(f"box {np.round(face.box, 1)}; eye line at {eye_line:.1f} degrees "
      "(y points down, so negative = tilted up to the right)")
box_crop = extract_faces(turned, [face], align=False)[0]           # (112, 112, 3) uint8

fig = Figure(layout="constrained", figsize=(9, 4.5))
ax_photo, ax_crop = fig.subplots(1, 2, width_ratios=[2, 1])
ax_photo.imshow(turned)
draw_boxes(ax_photo, face.box[None], color="lime")
ax_photo.plot(*face.landmarks.T, "c.", markersize=8)
ax_photo.set_title("photo turned by 20 degrees: box and landmarks")
ax_crop.imshow(box_crop)
ax_crop.set_title("square box crop, 112 x 112: still tilted")
for ax in (ax_photo, ax_crop):
    ax.axis("off")
_tutorial.save(fig, OUT / "why_align.png")

# %% [markdown]
# ## 8.2 The template
#
# The template is the five-point 112 x 112 template used by ArcFace/InsightFace: where the
# left eye, right eye, nose tip and the two mouth corners sit in every training crop ("left"
# is the image's left, the order of MTCNN's landmarks). The published numbers use OpenCV's
# pixel convention, in which pixel (r, c) has its centre at (c, r); in ours the centre is at
# (c + 0.5, r + 0.5), so `face_template` adds half a pixel. For another crop size the points
# scale with it; a `margin` (crop pixels of surroundings, half on each side) shrinks the
# template into the central size - margin pixels.

# %%
template = face_template()                       # (5, 2): ARCFACE_TEMPLATE_112 + 0.5
for name, published, ours in zip(LANDMARK_NAMES, ARCFACE_TEMPLATE_112, template):
    print(f"{name:19s} published ({published[0]:7.4f}, {published[1]:7.4f})  ours ({ours[0]:7.4f}, {ours[1]:7.4f})")
print("size 160, margin 32:", np.round(face_template(160, margin=32)[0], 3), "(left eye)")

# %% [markdown]
# ## 8.3 The fit, derived
#
# We look for a scale s >= 0, a rotation R (det R = +1: turning, never mirroring) and a shift t
# that minimize
#
# ```
# E(s, R, t) = sum_k | s R p_k + t - q_k |^2        p_k: the landmarks, q_k: the template
# ```
#
# **The shift.** Setting dE/dt = 0 gives t = mean(q) - s R mean(p): the best transform moves
# the centroid of the landmarks onto the centroid of the template. Put that back and what is
# left is about the centred points x_k = p_k - mean(p), y_k = q_k - mean(q):
#
# ```
# E = s^2 sum |x_k|^2  -  2 s sum y_k^T R x_k  +  sum |y_k|^2        (|R x| = |x|)
# ```
#
# **The rotation** only appears in the middle term, which we must make as large as possible.
# With X and Y the (K, 2) arrays of centred points, sum y_k^T R x_k = trace(R^T Y^T X). Take the
# SVD of the 2 x 2 matrix Y^T X = U diag(sigma) V^T: the term is trace(Z diag(sigma)) with
# Z = V^T R^T U, again a rotation or a mirror. Its diagonal entries are at most 1 and sigma >= 0,
# so the best is Z = I, R = U V^T. If U V^T happens to be a mirror (det = -1), R cannot be it;
# the best rotation then gives up the *smaller* singular value: Z = D = diag(1, -1),
# R = U D V^T. In one line, D = diag(1, det(U V^T)).
#
# **The scale.** E is a parabola in s: s = trace(diag(sigma) D) / sum |x_k|^2.
#
# A tiny case by hand first: (0, 0) -> (1, 1) and (2, 0) -> (1, 3). The segment keeps its
# length 2 and turns from along x to along y (+90 degrees), so s R = [[0, -1], [1, 0]] and
# t = (1, 1).

# %%
by_hand = similarity_transform([[0, 0], [2, 0]], [[1, 1], [1, 3]])
print("fitted [s R | t]:\n", np.round(by_hand, 12))
assert np.allclose(by_hand, [[0, -1, 1], [1, 0, 1]], rtol=0, atol=1e-12)

# %% [markdown]
# Now the same lines on the turned astronaut's landmarks, step by step, next to the library:

# %%
p, q = face.landmarks, template
X, Y = p - p.mean(axis=0), q - q.mean(axis=0)
U, sigma, Vt = np.linalg.svd(Y.T @ X)
D = np.diag([1.0, np.sign(np.linalg.det(U @ Vt))])
R = U @ D @ Vt
s = np.trace(np.diag(sigma) @ D) / np.sum(X**2)
t = q.mean(axis=0) - s * R @ p.mean(axis=0)
ours = np.hstack([s * R, t[:, None]])
print(f"singular values {np.round(sigma, 1)}, det(U V^T) = {np.linalg.det(U @ Vt):+.0f}")
print(f"rotation {np.degrees(np.arctan2(R[1, 0], R[0, 0])):+.1f} degrees, scale {s:.3f} "
      f"(crop pixels per photo pixel), shift {np.round(t, 1)}")
assert np.allclose(ours, alignment_matrix(face.landmarks), rtol=0, atol=1e-9)
residual = np.linalg.norm(apply_transform(ours, p) - q, axis=1)
print("where the landmarks land, pixels from their template point:", np.round(residual, 2))
rotation = np.degrees(np.arctan2(R[1, 0], R[0, 0]))
print(f"the eye line of 8.1 was at {eye_line:.1f} degrees; the fit turns by {rotation:+.1f}: the 20 we turned "
      f"the photo by, less the head's own tilt of {20 - abs(rotation):.1f}")

# %% [markdown]
# The rotation undoes the tilt of the eye line we measured in 8.1 (both printed above): the 20
# degrees we turned the photo by, less the astronaut's own head tilt. The residuals are not zero:
# five points have ten numbers, a similarity only four, and no real face has exactly the
# template's proportions.
#
# **A 2-D shortcut, as a check.** In the plane s R = [[a, -b], [b, a]] for some a, b, so
# s R p + t is *linear* in (a, b, tx, ty), and ordinary least squares over those four numbers
# must find the same transform (the SVD is what carries over to 3-D, where this trick fails):

# %%
x, y = p[:, 0], p[:, 1]
ones, zeros = np.ones(5), np.zeros(5)
rows = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])   # (10, 4)
a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([q[:, 0], q[:, 1]]), rcond=None)[0]
print("linear least squares:", np.round([a, -b, tx, b, a, ty], 6))
print("Umeyama:             ", np.round(ours.ravel(), 6))
assert np.allclose([[a, -b, tx], [b, a, ty]], ours, rtol=0, atol=1e-9)

# %% [markdown]
# ## 8.4 The warp
#
# The matrix maps photo -> crop. To fill crop pixel (i, j) we go the other way: its centre
# u = (j + 0.5, i + 0.5) comes from the photo point A^-1 (u - t). That point rarely hits a pixel
# centre, so we blend the four pixels around it (**bilinear interpolation**): in units of pixel
# centres the point is (c + fx, r + fy), and
#
# ```
# out = (1-fy)(1-fx) x[r, c] + (1-fy) fx x[r, c+1] + fy (1-fx) x[r+1, c] + fy fx x[r+1, c+1]
# ```
#
# A neighbour outside the photo counts as the `fill` value (0, black). By hand: shrink a 4 x 4
# image by 2, A = 0.5 I. Crop pixel (0, 0) has its centre at (0.5, 0.5), which comes from the
# photo point (1, 1): the corner shared by pixels 0, 1, 4 and 5, so fx = fy = 0.5 and the crop
# pixel is their mean, (0 + 1 + 4 + 5) / 4 = 2.5.

# %%
tiny = np.arange(16, dtype=np.float64).reshape(4, 4, 1)
print(tiny[:, :, 0])
shrunk = warp_affine_naive(tiny, [[0.5, 0, 0], [0, 0.5, 0]], 2, 2)
print("shrunk by 2:\n", shrunk[:, :, 0])
assert np.allclose(shrunk[:, :, 0], [[2.5, 4.5], [10.5, 12.5]])

# %% [markdown]
# `warp_affine_naive` is that formula in two loops, a point solved per pixel. `warp_affine`
# computes every source point at once, pads the photo with one pixel of fill and gathers the four
# neighbours as whole arrays. On the real face they agree to rounding:

# %%
photo = turned.astype(np.float64)
matrix = alignment_matrix(face.landmarks)
fast = warp_affine(photo, matrix, 112, 112)
naive = warp_affine_naive(photo, matrix, 112, 112)
print(f"max |fast - naive| = {np.abs(fast - naive).max():.2e} (values 0..255)")
assert np.abs(fast - naive).max() <= 1e-9 * np.abs(naive).max()
t_naive = _tutorial.best_time(lambda: warp_affine_naive(photo, matrix, 112, 112), 1)
t_fast = _tutorial.best_time(lambda: warp_affine(photo, matrix, 112, 112), 3 if QUICK else 20)
print(f"naive {t_naive * 1000:.0f} ms, fast {t_fast * 1000:.1f} ms: {t_naive / t_fast:.0f} x faster")

# %% [markdown]
# ## 8.5 The crops
#
# Three photos: the astronaut turned by 20 and by -30 degrees, and Grace Hopper (matplotlib's
# sample) turned by -30. Per photo: the square box crop, the aligned crop with the template's
# points drawn in, and the aligned crop with `margin=32` (the face fills the central 80 pixels).

# %%
photos = {
    "astronaut, +20": turned,
    "astronaut, -30": np.asarray(Image.fromarray(astronaut).rotate(-30, resample=Image.BILINEAR, expand=True)),
    "Grace Hopper, -30": np.asarray(Image.fromarray(sample_photo()).rotate(-30, resample=Image.BILINEAR, expand=True)),
}
fig = Figure(layout="constrained", figsize=(8, 8))
axes = fig.subplots(len(photos), 3)
best_faces = {}
for row, (title, image) in zip(axes, photos.items()):
    best = det.detect(image)[0]
    best_faces[title] = best
    columns = [("box crop", extract_faces(image, [best], align=False)[0], None),
               ("aligned", extract_faces(image, [best])[0], face_template()),
               ("aligned, margin 32", extract_faces(image, [best], margin=32)[0], face_template(112, 32))]
    for ax, (label, crop, points) in zip(row, columns):
        ax.imshow(crop, extent=(0, 112, 112, 0))            # pixel (r, c) covers [c, c+1) x [r, r+1)
        if points is not None:
            ax.plot(*points.T, "+", color="yellow", markersize=9)
        ax.set_title(f"{title}: {label}", fontsize=9)
        ax.axis("off")
_tutorial.save(fig, OUT / "crops.png")

# %% [markdown]
# ## 8.6 Is it really upright? Detect again
#
# The aligned crop should itself look like a frontal face, with its landmarks near the
# template. A face filling the whole picture is hard for the detector (it never saw one that
# way), so paste the crop on a larger black canvas first, detect, and subtract the offset.

# %%
print(f"{'photo':18s} {'eye line':>9s}   distance of each landmark from the template (px)")
distances = []
fig = Figure(layout="constrained", figsize=(9, 3.4))
for ax, (title, best) in zip(fig.subplots(1, len(best_faces)), best_faces.items()):
    crop = extract_faces(photos[title], [best])[0]
    canvas = np.zeros((256, 256, 3), np.uint8)
    canvas[72:184, 72:184] = crop
    again = det.detect(canvas)[0].landmarks - 72
    dx, dy = again[1] - again[0]
    distance = np.linalg.norm(again - face_template(), axis=1)
    distances.append(distance)
    print(f"{title:18s} {np.degrees(np.arctan2(dy, dx)):+6.1f} deg   {np.round(distance, 1)}")
    assert abs(np.degrees(np.arctan2(dy, dx))) < 5 and distance.max() < 9
    ax.imshow(crop, extent=(0, 112, 112, 0))
    ax.plot(*face_template().T, "+", color="yellow", markersize=10, label="template")
    ax.plot(*again.T, ".", color="cyan", markersize=7, label="detected again")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.axes[0].legend(loc="lower left", fontsize=7)
_tutorial.save(fig, OUT / "redetect.png")
POINT_NAMES = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")
mean_distance = np.mean(distances, axis=0)
print("mean distance from the template over the photos:",
      ", ".join(f"{name} {d:.1f} px" for name, d in zip(POINT_NAMES, mean_distance)))
print(f"farthest on average: the {POINT_NAMES[int(np.argmax(mean_distance))]}")
print("figures written to", OUT)

# %% [markdown]
# The eyes come back level and every landmark within a few pixels of its template point. Which
# point stays farthest (printed above) depends on the face: a similarity transform has four
# numbers for ten coordinates, so it cannot stretch one part of a face (a wide smile, eyes set
# apart) without the rest, and it spreads what is left over all five points.
#
# ## Exercises
#
# 1. **Mirror images.** Swap the two eyes and the two mouth corners of `face.landmarks`
#    (`face.landmarks[[1, 0, 2, 4, 3]]`) and fit again. What is det(U V^T) now, and how large are
#    the residuals? *Hint:* the swapped points are a mirror image of the template; R may not
#    mirror, so `D` flips the weaker direction and the fit is poor. Look at the crop too.
# 2. **Two points.** Fit with the eyes only (`similarity_transform(p[:2], q[:2])`). Why are the
#    eye residuals zero, and where does the mouth end up? *Hint:* two points have four numbers,
#    exactly as many as a similarity.
# 3. **Shrinking too much.** Extract the Grace Hopper face at `size=24` and compare with
#    shrinking the `size=112` crop by area averaging (`pipeline.detection.resize.resize_area`). Which
#    one flickers (aliases)? *Hint:* bilinear sampling reads only 4 pixels per output pixel; when
#    one crop pixel spans 5 photo pixels most photo pixels are never read.
# 4. **Fill and borders.** Make a face hang over the border: `turned[:, 230:]` cuts off the
#    left of the face. Extract it with `fill=(127, 127, 127)`. How wide is the blend between
#    photo and fill? *Hint:* one pixel: the bilinear weights of the neighbours outside.
# 5. **Margin in photo pixels.** facenet-pytorch's `margin` is in pixels of the final crop too.
#    For the astronaut at +20 degrees, how many *photo* pixels does `margin=32` add on each
#    side? *Hint:* divide by the fitted scale s.
