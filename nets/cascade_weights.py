"""The six Cascade-CNN nets as one set, and their weight files.

Each net is stored as ``cascade_<name>.npz`` (name: net12, cal12, net24, cal24, net48, cal48),
loaded without pickle. Two things keep the six files small (6 MB in all instead of 15 MB):

* a file holds only the net's *own* parameters: the 24-net's 12x12 branch is the trained 12-net,
  kept frozen, so it is loaded from cascade_net12.npz (and the 48-net's branch from
  cascade_net24.npz) instead of being stored twice;
* parameters are stored as float16 and computed in float32. The training command rounds the
  trained weights to float16 *before* it chooses the thresholds, so the thresholds belong to
  exactly the weights that ship (`round_to_storage`).
 The detection nets'
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
import numpy as np

from .weights import META, WEIGHTS_DIR, WeightsError, read_npz, save_arrays

NET_CLASSES = {"net12": Net12, "cal12": CalibNet12, "net24": Net24, "cal24": CalibNet24,
               "net48": Net48, "cal48": CalibNet48}
DEFAULT_ASPECT = 1.3  # height / width of a face box, used when a file does not say
STORAGE_DTYPE = np.float16  # how parameters are stored; nets compute in float32
BRANCH_SOURCE = {"net24": "net12", "net48": "net24"}  # whose trained features a branch holds


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


def round_to_storage(net) -> None:
    """Round every parameter to what a weights file stores (float16), in place, keeping float32."""
    for p in net.parameters():
        p.value[...] = p.value.astype(STORAGE_DTYPE).astype(p.value.dtype)


def own_parameters(net) -> dict:
    """name -> Parameter of what a file stores: all of them except a frozen branch's."""
    if hasattr(net, "named_trainable_parameters") and getattr(net, "frozen_branch", False):
        return dict(net.named_trainable_parameters())
    return dict(net.named_parameters())


def save_net(net, path, meta: dict | None = None) -> None:
    """Write a cascade net's own parameters (float16) and its ``meta`` facts, atomically."""
    arrays = {name: p.value.astype(STORAGE_DTYPE) for name, p in own_parameters(net).items()}
    arrays.update({META + name: np.asarray(value) for name, value in (meta or {}).items()})
    save_arrays(arrays, path)


def load_net(name: str, folder=WEIGHTS_DIR):
    """One trained net and its meta facts: (net in inference mode, meta dict). A net with a
    frozen branch gets it from the smaller net's file in the same folder. Refuses, naming the
    file and the array, a missing or unexpected array, a wrong shape or a non-float dtype."""
    path = weights_path(name, folder)
    if not path.is_file():
        raise WeightsError(f"{path}: Cascade-CNN weights not found (train them with "
                           f"`facecascade train cascade --data DIR --out DIR`)")
    state = read_npz(path)
    meta = {k[len(META):]: v for k, v in state.items() if k.startswith(META)}
    state = {k: v for k, v in state.items() if not k.startswith(META)}
    net = NET_CLASSES[name]()
    if name in BRANCH_SOURCE:
        net.load_branch_from(load_net(BRANCH_SOURCE[name], folder)[0])
    own = own_parameters(net)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(f"{path}: arrays do not match {type(net).__name__}: "
                           f"missing {missing}, unexpected {unexpected}")
    for key, param in own.items():
        value = state[key]
        if value.dtype not in (np.float16, np.float32):
            raise WeightsError(f"{path}: array {key!r} has dtype {value.dtype}, expected float16 or float32")
        if value.shape != param.value.shape:
            raise WeightsError(f"{path}: array {key!r} has shape {value.shape}, expected {param.value.shape}")
        param.value[...] = value
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
