"""MTCNN's two weight sets: the released models' and the nets trained here from scratch.

* "released": ``pnet.npz``, ``rnet.npz``, ``onet.npz``, the authors' Caffe models converted to
  NumPy. P-Net and R-Net have no landmark head. Their thresholds are the authors' demo's
  (0.6, 0.7, 0.7), and they were trained on windows measured with the MATLAB code's pixel
  conventions, which the detector keeps for them (``conventions="released"``).
* "scratch": ``mtcnn_pnet.npz``, ``mtcnn_rnet.npz``, ``mtcnn_onet.npz``, written by
  ``facecascade train mtcnn`` (all three nets with the landmark head, trained on exact windows,
  so ``conventions="exact"``). Each file holds ``meta.threshold``, the face probability that
  keeps 99% of the validation positives; O-Net's may also hold ``meta.operating_threshold``,
  chosen on validation photos for at most 0.1 false positives per face-free photo, which is
  then O-Net's threshold.

`load_mtcnn` also takes a folder holding a training run's ``mtcnn_*.npz`` files
(``<out>/weights`` of ``facecascade train mtcnn``). Files load with ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .mtcnn import ONet, PNet, RNet
from .weights import WEIGHTS_DIR, WeightsError, load_weights

RELEASED_THRESHOLDS = (0.6, 0.7, 0.7)  # face probability to pass P-Net, R-Net, O-Net (the authors' demo)
WEIGHT_SETS = ("released", "scratch")
NAMES = ("pnet", "rnet", "onet")


@dataclass
class MTCNNNets:
    """The three nets (in eval mode), their thresholds and the window conventions they were
    trained with ("released" or "exact"; see `pipeline.detection.mtcnn.MTCNNDetector`)."""

    pnet: PNet
    rnet: RNet
    onet: ONet
    thresholds: tuple
    conventions: str

    @property
    def nets(self) -> tuple:
        return (self.pnet, self.rnet, self.onet)


def scratch_path(name: str, folder=WEIGHTS_DIR) -> Path:
    """Where the scratch-trained net ``name`` ("pnet", "rnet" or "onet") is stored."""
    if name not in NAMES:
        raise ValueError(f"no MTCNN net named {name!r}; names are {list(NAMES)}")
    return Path(folder) / f"mtcnn_{name}.npz"


def load_mtcnn(weights="released") -> MTCNNNets:
    """The MTCNN nets of a weight set: "released", "scratch", or a folder (str or Path) that
    holds ``mtcnn_pnet.npz``, ``mtcnn_rnet.npz`` and ``mtcnn_onet.npz``. Raises WeightsError
    naming the file that is missing or does not fit, ValueError for an unknown name."""
    if isinstance(weights, str) and weights == "released":
        nets = []
        for cls, name in zip((PNet, RNet, ONet), NAMES):
            net = cls()
            load_weights(net, WEIGHTS_DIR / f"{name}.npz")
            nets.append(net.eval())
        return MTCNNNets(*nets, thresholds=RELEASED_THRESHOLDS, conventions="released")
    if isinstance(weights, str) and weights == "scratch":
        folder = WEIGHTS_DIR
    elif isinstance(weights, (str, Path)) and Path(weights).is_dir():
        folder = Path(weights)
    else:
        raise ValueError(f"weights must be one of {list(WEIGHT_SETS)} or a folder of mtcnn_*.npz files; "
                         f"got {weights!r}")
    nets, thresholds = [], []
    for cls, name in zip((PNet, RNet, ONet), NAMES):
        net = cls(landmarks=True)
        path = scratch_path(name, folder)
        meta = load_weights(net, path)
        key = "operating_threshold" if "operating_threshold" in meta else "threshold"
        if key not in meta:
            raise WeightsError(f"{path}: no meta.threshold (files written by `facecascade train mtcnn` have one)")
        nets.append(net.eval())
        thresholds.append(float(meta[key]))
    return MTCNNNets(*nets, thresholds=tuple(thresholds), conventions="exact")
