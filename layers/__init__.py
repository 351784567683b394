"""Hand-written layers with forward and backward passes, in NumPy.

Every op is a pair of pure functions:

    out, cache = NAME_forward(x, *params, **hyper)
    dx (, dparam1, ...) = NAME_backward(dout, cache)      # gradients in argument order

Backward depends only on its cache and changes nothing. Losses return (loss, dinput).
The module layer (``Conv2D``, ``Sequential``, ...) holds parameters for nets; the optimizers
(``SGD``, ``Adam``) are the only code that updates them.
"""

from .activations import prelu_backward, prelu_forward, relu_backward, relu_forward
from .conv import col2im, conv_backward, conv_backward_naive, conv_forward, conv_forward_naive, im2col
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .losses import euclidean_loss, ohem_weights, softmax_cross_entropy, softmax_cross_entropy_per_sample
from .lrn import (lrn_backward, lrn_forward, lrn_within_backward, lrn_within_backward_naive, lrn_within_forward,
                  lrn_within_forward_naive)
from .modules import (LRN, SPP, Conv2D, Dropout, Flatten, Linear, MaxPool2D, Module, Parameter, PReLU, ReLU,
                      Sequential, Softmax, WithinChannelLRN)
from .optim import SGD, Adam, Optimizer
from .pool import maxpool_backward, maxpool_backward_naive, maxpool_forward, maxpool_forward_naive
from .shapes import conv_output_size
from .softmax import softmax, softmax_backward, softmax_forward
from .spp import spp_backward, spp_backward_naive, spp_bins, spp_forward, spp_forward_naive

__all__ = [name for name in dir() if not name.startswith("_")]
