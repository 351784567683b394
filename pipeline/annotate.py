"""Draw detections onto a copy of the image at its full resolution (for `facecascade detect`).

Pillow's ImageDraw keeps the output the size of the input, which a matplotlib figure would not;
the figures for teaching live in `pipeline.plots`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

BOX_COLOR = (0, 255, 0)
LANDMARK_COLOR = (0, 255, 255)


def annotate(image: np.ndarray, faces) -> Image.Image:
    """image: (H, W, 3) uint8 RGB; faces: list of Face (.box (4,) x1, y1, x2, y2 in pixels,
    .score, .landmarks (5, 2)). Returns a new RGB PIL image with boxes, scores and landmarks."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(min(canvas.size) / 250))  # visible on large photos, thin on small ones
    for face in faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        draw.rectangle([x1, y1, x2, y2], outline=BOX_COLOR, width=line)
        draw.text((x1 + line, max(0.0, y1 - 12)), f"{face.score:.3f}", fill=BOX_COLOR)
        r = line + 1
        for x, y in face.landmarks:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=LANDMARK_COLOR)
    return canvas
