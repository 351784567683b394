"""Draw detections onto a copy of the image at its full resolution (for `facecascade detect`).

Pillow's ImageDraw keeps the output the size of the input, which a matplotlib figure would not;
the figures for teaching live in `pipeline.plots`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_COLOR = (0, 255, 0)
LANDMARK_COLOR = (0, 255, 255)
LABEL_TEXT_COLOR = (0, 0, 0)


def _font(size: int):
    """Pillow's built-in font at ``size`` pixels (a scalable one since Pillow 10.1); older
    Pillow only has a small fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def annotate(image: np.ndarray, faces) -> Image.Image:
    """image: (H, W, 3) uint8 RGB; faces: list of Face (.box (4,) x1, y1, x2, y2 in pixels,
    .score, .landmarks (5, 2)). Returns a new RGB PIL image with boxes, scores and landmarks.

    Lines and labels grow with the image (about 1/250 and 1/40 of its shorter side, at least
    1 and 12 px), so they read the same on a small and a large photo. Each score is written on
    a filled label above its box, best score first; a label that would cover one already
    written is left out (its box is still drawn)."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(min(canvas.size) / 250))  # visible on large photos, thin on small ones
    font = _font(max(12, round(min(canvas.size) / 40)))
    placed: list[tuple[float, float, float, float]] = []
    for face in sorted(faces, key=lambda f: -f.score):
        x1, y1, x2, y2 = (float(v) for v in face.box)
        draw.rectangle([x1, y1, x2, y2], outline=BOX_COLOR, width=line)
        r = line + 1
        for x, y in face.landmarks:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=LANDMARK_COLOR)
        text = f"{face.score:.3f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 2 * line, bottom - top + 2 * line
        lx, ly = x1, (y1 - h if y1 - h >= 0 else y1)  # above the box, or inside it at the top edge
        label = (lx, ly, lx + w, ly + h)
        if any(label[0] < p[2] and p[0] < label[2] and label[1] < p[3] and p[1] < label[3] for p in placed):
            continue
        placed.append(label)
        draw.rectangle(label, fill=BOX_COLOR)
        draw.text((lx + line - left, ly + line - top), text, fill=LABEL_TEXT_COLOR, font=font)
    return canvas
