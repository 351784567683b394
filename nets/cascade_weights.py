"""The six Cascade-CNN nets as one set, and their weight files.

Each net is stored as ``cascade_<name>.npz`` (name: net12, cal12, net24, cal24, net48, cal48)
with `nets.weights.save_weights`: float32 parameters, loaded without pickle. The detection nets'
files also hold ``meta.threshold``, the face probability that keeps 99% of the validation faces
(chosen during training); the 48-net's file may also hold ``meta.operating_threshold``, the
final score (24-net probability x 48-net probability) chosen on validation photos for at most
0.1 false positives per face-free photo, which the detector uses as its ``final_threshold``. cal48's file holds ``meta.aspect``, the height / width of the
training face boxes (the detector turns its square windows into boxes of that shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cascade import CalibNet12, CalibNet24, CalibNet48, Net12, Net24, Net48
from .weights import WEIGHTS_DIR, WeightsError, load_weights

NET_CLASSES = {"net12": Net12, "cal12": CalibNet12, "net24": Net24, "cal24": CalibNet24,
               "net48": Net48, "cal48": CalibNet48}
DEFAULT_ASPECT = 1.3  # height / width of a face box, used when a file does not say


def weights_path(name: str, folder=WEIGHTS_DIR) -> Path:
    """Where net ``name`` (net12, cal12, ...) is stored in ``folder``."""
    if name not in NET_CLASSES:
        raise ValueError(f"no Cascade-CNN net named {name!r}; names are {list(NET_CLASSES)}")
    return Path(folder) / f"cascade_{name}.npz"


@dataclass
class CascadeNets:
    """The six nets (in inference mode when loaded), the three detection thresholds and the
    face box aspect ratio."""

    net12: Net12
    cal12: CalibNet12
    net24: Net24
    cal24: CalibNet24
    net48: Net48
    cal48: CalibNet48
    thresholds: tuple = (0.5, 0.5, 0.5)
    aspect: float = DEFAULT_ASPECT
    final_threshold: float = 0.0


def load_net(name: str, folder=WEIGHTS_DIR):
    """One trained net and its meta facts: (net in inference mode, meta dict)."""
    path = weights_path(name, folder)
    if not path.is_file():
        raise WeightsError(f"{path}: Cascade-CNN weights not found (train them with "
                           f"`facecascade train cascade --data DIR --out DIR`)")
    net = NET_CLASSES[name]()
    meta = load_weights(net, path)
    return net.inference(), meta


def load_cascade(folder=WEIGHTS_DIR) -> CascadeNets:
    """All six nets from ``folder`` (default: the shipped weights)."""
    nets, metas = {}, {}
    for name in NET_CLASSES:
        nets[name], metas[name] = load_net(name, folder)
    thresholds = tuple(float(metas[n].get("threshold", 0.5)) for n in ("net12", "net24", "net48"))
    final = float(metas["net48"].get("operating_threshold", 0.0))  # chosen on validation photos
    aspect = float(metas["cal48"].get("aspect", DEFAULT_ASPECT))
    return CascadeNets(**nets, thresholds=thresholds, aspect=aspect, final_threshold=final)


def shipped_cascade() -> CascadeNets:
    """The Cascade-CNN weights that ship with the project (nets/weights/cascade_*.npz)."""
    return load_cascade(WEIGHTS_DIR)
