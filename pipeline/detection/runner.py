"""Where the detectors' heavy work runs: the seam between the algorithm and the speed machinery.

A detector's stages do two kinds of heavy work, and ask a *runner* to do it:

* ``scan_levels``: resize the image to every pyramid level and run a fully convolutional net
  (P-Net, the 12-net) over each level; the detector says what to read off each level's output.
* ``score_crops``: cut boxes out of the image, resize them to a net's input and run the net.

Everything else (which levels, which thresholds, NMS, regression) is the detector's own code.
Two runners do the same work:

* `PlainRunner` (this file): one level and one batch of crops after the other, in this process,
  with the nets as they are. Read it to see what the work is, or step through it in a debugger:
  ``MTCNNDetector(runner="plain")``.
* `pipeline.fast.runner.FastRunner` (the default): the same steps shared among forked helper
  processes, with the nets in a faster memory layout and P-Net run in strips. It finds the same
  faces; scores may differ from the plain runner's in the last bits of float32.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from layers.modules import inference_mode
from pipeline.data.images import to_chw_float
from pipeline.detection.crops import crop_and_resize
from pipeline.detection.proposals import normalize
from pipeline.detection.resize import resize_area

BATCH = 256  # crops per net forward pass at most, to bound memory
RUNNERS = ("fast", "plain")


def named_outputs(net, x: np.ndarray) -> dict[str, np.ndarray]:
    """net.forward(x) as a dict of named outputs: MTCNN's nets name theirs ("face", "box",
    "landmarks"); a net with one output (the Cascade-CNN's) gives {"logits": output}."""
    out = net.forward(x)
    return out if isinstance(out, dict) else {"logits": out}


def crop_and_score(net, image_chw: np.ndarray, boxes: np.ndarray, size: int, batch: int = BATCH):
    """Cut the boxes (K, 4) (x1, y1, x2, y2 in pixels) out of image_chw (3, H, W) (0..255),
    resize them to size x size, normalize and run the net, in chunks of at most ``batch`` boxes
    (to bound memory).

    Returns kept (M,) int64, the boxes whose window holds a pixel (`crop_and_resize`), and the
    net's outputs (head name -> (M, ...), `named_outputs`) for those crops in box order ({} when
    none was kept).
    """
    kept, outputs = [], []
    for start in range(0, len(boxes), batch):
        patches, chunk_kept = crop_and_resize(image_chw, boxes[start : start + batch], size)
        if len(chunk_kept):
            kept.append(chunk_kept + start)
            outputs.append(named_outputs(net, normalize(patches)))
    if not outputs:
        return np.zeros(0, np.int64), {}
    joined = {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]}
    return np.concatenate(kept).astype(np.int64, copy=False), joined


class PlainRunner:
    """The heavy steps in the most direct way: in this process, one after the other.

    ``session(nets, rgb)`` readies one image (nets: name -> net; they run in inference mode);
    ``scan_levels`` and ``score_crops`` run the net they are given, inside a session or not. One
    session at a time: a second thread's detection waits for the first.
    """

    workers = 1

    def __init__(self):
        self._lock = threading.RLock()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    @contextmanager
    def session(self, nets: dict, rgb: np.ndarray):
        """The nets ready for one image; yields rgb (H, W, 3) uint8 as the (3, H, W) float32
        array (0..255) that the stages take."""
        with self._lock, inference_mode(*nets.values()):
            yield to_chw_float(rgb)

    @contextmanager
    def batch(self):
        """Workers kept for a batch of images: none to keep here."""
        yield self

    def close(self) -> None:
        """Nothing to end."""

    def scan_levels(self, net_name: str, net, image_chw: np.ndarray, scales, sizes, read_level, *settings) -> list:
        """For each pyramid level, ``read_level(net, level, scale, *settings)``, in pyramid order.

        net_name: the net's name in the session ("pnet", "net12"); image_chw: (3, H, W) float32
        0..255; scales: the levels' scales (level size / image size); sizes: their (h, w) in
        pixels; level: the image resized to (h, w) and normalized, (3, h, w) float32.
        """
        with inference_mode(net):
            return [read_level(net, normalize(resize_area(image_chw, *size)), scale, *settings)
                    for scale, size in zip(scales, sizes)]

    def score_crops(self, net_name: str, net, image_chw: np.ndarray, boxes: np.ndarray, size: int):
        """`crop_and_score` of boxes (K, 4) in pixels of image_chw (3, H, W) with the net (named
        ``net_name`` in the session): (kept (M,) int64, outputs name -> (M, ...))."""
        with inference_mode(net):
            return crop_and_score(net, image_chw, boxes, size)


def make_runner(kind: str, workers: int | None, batch_last: bool):
    """A runner by name: "plain" (`PlainRunner`) or "fast" (`pipeline.fast.runner.FastRunner`
    with ``workers`` processes, None: as many as the CPUs, at most four; batch_last: run the
    nets in the batch-last layout, which MTCNN's nets have and the Cascade-CNN's lack)."""
    if kind == "plain":
        return PlainRunner()
    if kind == "fast":
        from pipeline.fast.runner import FastRunner

        return FastRunner(workers, batch_last=batch_last)
    raise ValueError(f"runner must be one of {', '.join(RUNNERS)}; got {kind!r}")


class RunsOnARunner:
    """What both detectors do the same way with their runner (``self.runner``): end its helper
    processes, and detect many images in one call."""

    def close(self) -> None:
        """End the runner's helper processes now (the next detection starts new ones)."""
        self.runner.close()

    def detect_many(self, images, progress: bool = False) -> list:
        """Faces in many images: paths, (H, W, 3) uint8 arrays or PIL images, of any sizes.
        Returns one `pipeline.detection.batch.ImageResult` per image, in order (``.faces``, or
        ``.error`` for an image that could not be read: the rest go on); progress: a progress
        bar on stderr (on a terminal). The workers stay up for the whole batch."""
        from pipeline.detection.batch import detect_many

        return detect_many(self, images, progress=progress)
