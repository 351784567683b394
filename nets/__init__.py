"""The nets: MTCNN's P-Net, R-Net and O-Net (released weights, or trained here) and Cascade-CNN's six nets."""

from .cascade import (CASCADE_NETS, NET12_SIZE, NET24_SIZE, NET48_SIZE, NUM_CALIBRATION_CLASSES, CalibNet12,
                      CalibNet24, CalibNet48, CascadeFeatures, CascadeNet, Net12, Net24, Net48)
from .heads import MultiHeadNet
from .mtcnn import ONET_SIZE, PNET_SIZE, RNET_SIZE, ONet, PNet, RNet
from .mtcnn_weights import WEIGHT_SETS, MTCNNNets, load_mtcnn
from .weights import WEIGHTS_DIR, WeightsError, load_weights, save_weights


def pretrained_mtcnn():
    """The three MTCNN nets with the released weights, in eval mode: (pnet, rnet, onet)."""
    return load_mtcnn("released").nets


__all__ = ["MultiHeadNet", "PNet", "RNet", "ONet", "PNET_SIZE", "RNET_SIZE", "ONET_SIZE", "WEIGHTS_DIR",
           "WeightsError", "load_weights", "save_weights", "pretrained_mtcnn", "load_mtcnn", "MTCNNNets", "WEIGHT_SETS",
           "CascadeNet", "CascadeFeatures", "Net12", "Net24", "Net48", "CalibNet12", "CalibNet24", "CalibNet48",
           "CASCADE_NETS", "NET12_SIZE", "NET24_SIZE", "NET48_SIZE", "NUM_CALIBRATION_CLASSES"]
