"""The fast runner: the detectors' heavy steps (`pipeline.detection.runner`) on every core.

It does what `pipeline.detection.runner.PlainRunner` does, with four speed devices, each in its
own module of this package:

* processes (`parallel`, `helpers`): each step is cut into one share per worker, this process
  and forked helper processes; the helpers read the image from memory shared with this
  process. Pyramid levels are shared by their work (`strips.level_work`), crops evenly.
* the batch-last layout (`batch_last`): MTCNN's nets run as `BatchLast` copies, made again
  only when the weights change (`versions`), and the helpers are forked again then.
* strips (`strips`): P-Net runs over each level in strips that stay in the CPU cache.
* one BLAS thread, glibc's memory thresholds settled (`parallel`, `memory`).

`benchmarks/bench_detect.py` measures what each of them gains.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np

from layers.modules import inference_mode
from pipeline.data.images import to_chw_float
from pipeline.detection.proposals import normalize
from pipeline.detection.resize import resize_area_pyramid
from pipeline.detection.runner import crop_and_score
from pipeline.fast.batch_last import BatchLastCache
from pipeline.fast.parallel import Parallel, join_scores, join_shares, split_by_weight, split_evenly
from pipeline.fast.strips import InStrips, level_work
from pipeline.fast.versions import NetVersions


class FastRunner:
    """``scan_levels`` and ``score_crops`` (see `pipeline.detection.runner.PlainRunner`) shared
    among ``workers`` processes (None: the CPUs, at most four; `pipeline.fast.parallel`).

    batch_last: run the nets as `BatchLast` copies and the level scans in strips (MTCNN's
    nets); else the nets run as they are, in inference mode (the Cascade-CNN's).
    """

    def __init__(self, workers: int | None = None, batch_last: bool = True):
        self.parallel = Parallel(workers)
        self.batch_last = batch_last
        self._layouts = BatchLastCache() if batch_last else None  # each net in the faster layout
        self._versions = NetVersions()  # notices changed weights, for the helper processes
        self._nets = None  # during a session: name -> the net as it runs

    @property
    def workers(self) -> int:
        return self.parallel.workers

    def __getstate__(self):
        return {**self.__dict__, "_nets": None}

    @contextmanager
    def session(self, nets: dict, rgb: np.ndarray):
        """The workers ready for one image (nets: name -> net); yields rgb (H, W, 3) uint8 as the
        (3, H, W) float32 array (0..255) that the stages take, in memory the helpers share.

        The helpers are forks with the nets as they were when they started: a change to the
        weights (a new BatchLast, a new version) starts new ones.
        """
        with self.parallel.exclusive():  # one detection at a time, whatever the threads
            outer = self._nets  # a session inside another (same thread) gives it back
            if self.batch_last:
                self._nets = {name: self._layouts(net) for name, net in nets.items()}
                key, modes = tuple(self._nets.values()), nullcontext()
            else:
                self._nets = dict(nets)
                key = (*nets.values(), *(self._versions(net) for net in nets.values())) if self.workers > 1 else ()
                modes = inference_mode(*nets.values())
            try:
                with modes, self.parallel.session(self, key=key, shared_bytes=4 * np.asarray(rgb).size):
                    yield to_chw_float(rgb, out=self.parallel.shared_array((3, *np.shape(rgb)[:2]), np.float32))
            finally:
                self._nets = outer

    def batch(self):
        """A context in which the workers stay up from one image to the next (one BLAS thread)."""
        return self.parallel.session()

    def close(self) -> None:
        """End the helper processes now (the next session starts new ones)."""
        self.parallel.close()

    @contextmanager
    def _alone(self, net_name: str, net):
        """Outside a session (a stage called on its own): net, as it is now, in this process."""
        self._nets = {net_name: self._layouts(net) if self.batch_last else net}
        try:
            with nullcontext() if self.batch_last else inference_mode(net):
                yield
        finally:
            self._nets = None

    def scan_levels(self, net_name: str, net, image_chw: np.ndarray, scales, sizes, read_level, *settings) -> list:
        """As `PlainRunner.scan_levels`: each worker resizes and scans a share of the levels,
        about equal in work, with the session's copy of net ``net_name``."""
        if self._nets is None:
            with self._alone(net_name, net):
                return self.scan_levels(net_name, net, image_chw, scales, sizes, read_level, *settings)
        H, W = image_chw.shape[1:]
        shares = split_by_weight([level_work(H, W, h, w) for h, w in sizes], self.workers)
        parts = self.parallel.run(_scan_share, self, [
            (net_name, image_chw, [scales[i] for i in share], [sizes[i] for i in share], read_level, settings)
            for share in shares])
        return join_shares(shares, parts)  # back in pyramid order

    def score_crops(self, net_name: str, net, image_chw: np.ndarray, boxes: np.ndarray, size: int):
        """As `PlainRunner.score_crops`: each worker crops and scores a share of the boxes, with
        the session's copy of net ``net_name``."""
        if self._nets is None:
            with self._alone(net_name, net):
                return self.score_crops(net_name, net, image_chw, boxes, size)
        chunks = split_evenly(len(boxes), self.workers)
        parts = self.parallel.run(_crop_share, self, [(net_name, image_chw, boxes[chunk], size) for chunk in chunks])
        return join_scores([chunk.start for chunk in chunks], parts)


def _scan_share(runner: FastRunner, net_name: str, image_chw: np.ndarray, scales, sizes, read_level, settings) -> list:
    """A worker's share of `FastRunner.scan_levels`: these levels of image_chw (3, H, W),
    resized all at once (the same numbers as level by level). (The runner here may be a
    helper's copy from when it started: its nets are those of the session.)"""
    net = runner._nets[net_name]
    if runner.batch_last:
        net = InStrips(net)
    return [read_level(net, normalize(level), scale, *settings)
            for scale, level in zip(scales, resize_area_pyramid(image_chw, sizes))]


def _crop_share(runner: FastRunner, net_name: str, image_chw: np.ndarray, boxes: np.ndarray, size: int):
    """A worker's share of `FastRunner.score_crops`: `crop_and_score` of boxes (K, 4)."""
    return crop_and_score(runner._nets[net_name], image_chw, boxes, size)
