"""The nets: MTCNN's P-Net, R-Net and O-Net (with the released weights) and Cascade-CNN's six nets."""

from .cascade import (CASCADE_NETS, NET12_SIZE, NET24_SIZE, NET48_SIZE, NUM_CALIBRATION_CLASSES, CalibNet12,
                      CalibNet24, CalibNet48, CascadeFeatures, CascadeNet, Net12, Net24, Net48)
from .heads import MultiHeadNet
from .mtcnn import ONET_SIZE, PNET_SIZE, RNET_SIZE, ONet, PNet, RNet
from .weights import WEIGHTS_DIR, WeightsError, load_weights, save_weights


def pretrained_mtcnn():
    """The three MTCNN nets with the released weights, in eval mode: (pnet, rnet, onet)."""
    nets = []
    for cls, name in ((PNet, "pnet"), (RNet, "rnet"), (ONet, "onet")):
        net = cls()
        load_weights(net, WEIGHTS_DIR / f"{name}.npz")
        nets.append(net.eval())
    return tuple(nets)


__all__ = ["MultiHeadNet", "PNet", "RNet", "ONet", "PNET_SIZE", "RNET_SIZE", "ONET_SIZE", "WEIGHTS_DIR",
           "WeightsError", "load_weights", "save_weights", "pretrained_mtcnn",
           "CascadeNet", "CascadeFeatures", "Net12", "Net24", "Net48", "CalibNet12", "CalibNet24", "CalibNet48",
           "CASCADE_NETS", "NET12_SIZE", "NET24_SIZE", "NET48_SIZE", "NUM_CALIBRATION_CLASSES"]
