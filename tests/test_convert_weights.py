"""The one-time weight conversion: TensorFlow layout (as the `mtcnn` package ships the released
models) to ours. Checked against an independent NHWC forward pass that follows the package's
Keras graph, including its Permute((2, 1, 3)) before Flatten."""

from __future__ import annotations

import numpy as np

from nets import RNet
from nets.convert_weights import TF_ARRAY_ORDER, tf_to_numpy_layout


def nhwc_conv(x, kernel, bias):
    """'valid' cross-correlation, x (N, H, W, C), kernel (KH, KW, C, F) -> (N, OH, OW, F)."""
    KH, KW = kernel.shape[:2]
    N, H, W, _ = x.shape
    out = np.zeros((N, H - KH + 1, W - KW + 1, kernel.shape[3]))
    for p in range(KH):
        for q in range(KW):
            out += np.einsum("nhwc,cf->nhwf", x[:, p : p + H - KH + 1, q : q + W - KW + 1], kernel[p, q])
    return out + bias


def nhwc_maxpool_same(x, size, stride):
    """TF 'SAME' max pooling (equal to Caffe's ceil mode for these sizes)."""
    N, H, W, C = x.shape
    OH, OW = -(-H // stride), -(-W // stride)
    pad_h, pad_w = max((OH - 1) * stride + size - H, 0), max((OW - 1) * stride + size - W, 0)
    xp = np.full((N, H + pad_h, W + pad_w, C), -np.inf)
    xp[:, pad_h // 2 : pad_h // 2 + H, pad_w // 2 : pad_w // 2 + W] = x
    out = np.full((N, OH, OW, C), -np.inf)
    for p in range(size):
        for q in range(size):
            out = np.maximum(out, xp[:, p : p + stride * OH : stride, q : q + stride * OW : stride])
    return out


def nhwc_maxpool_valid(x, size, stride):
    N, H, W, C = x.shape
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.full((N, OH, OW, C), -np.inf)
    for p in range(size):
        for q in range(size):
            out = np.maximum(out, x[:, p : p + stride * OH : stride, q : q + stride * OW : stride])
    return out


def prelu(x, alpha):
    return np.where(x > 0, x, alpha.reshape(-1) * x)


def keras_rnet(x, a):
    """The `mtcnn` package's R-Net graph on NHWC input, from its TF-layout arrays ``a``."""
    x = nhwc_maxpool_same(prelu(nhwc_conv(x, a[0], a[1]), a[2]), 3, 2)
    x = nhwc_maxpool_valid(prelu(nhwc_conv(x, a[3], a[4]), a[5]), 3, 2)
    x = prelu(nhwc_conv(x, a[6], a[7]), a[8])
    x = x.transpose(0, 2, 1, 3).reshape(len(x), -1)  # Permute((2, 1, 3)) then Flatten
    x = prelu(x @ a[9] + a[10], a[11])
    return x @ a[12] + a[13], x @ a[14] + a[15]  # box, face logits


def test_rnet_conversion_matches_the_keras_graph():
    rng = np.random.default_rng(0)
    net = RNet()
    shapes = [(3, 3, 3, 28), (28,), (1, 1, 28), (3, 3, 28, 48), (48,), (1, 1, 48), (2, 2, 48, 64), (64,), (1, 1, 64),
              (576, 128), (128,), (128,), (128, 4), (4,), (128, 2), (2,)]
    arrays = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in shapes]
    state = tf_to_numpy_layout(arrays, TF_ARRAY_ORDER["rnet"], "fc4", (3, 3))
    net.load_state_dict(state)
    net = net.astype(np.float64).eval()
    net.load_state_dict(state)
    x = rng.standard_normal((2, 24, 24, 3))
    box, face = keras_rnet(x, [a.astype(np.float64) for a in arrays])
    out = net.forward(x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(out["box"], box, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["face"], face, rtol=1e-10, atol=1e-10)
