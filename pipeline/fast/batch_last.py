"""A speed device for inference: run a net with the batch as the *last* axis, (C, H, W, N).

``net.forward`` works layer by layer in the textbook layout (N, C, H, W). The detector calls it
on hundreds of small crops (R-Net, O-Net) and on strips of the pyramid (P-Net), where most of
the time goes to moving memory, not to multiplying. `BatchLast` runs the same net, with the same
weights, in the layout (C, H, W, N), where every step moves less:

* **Convolution.** The window offset (p, q) of every sample is one slice x[:, p:p+OH, q:q+OW, :]
  whose rows are runs of OW*N contiguous numbers, copied into row c*KH*KW + p*KW + q of
  ``cols`` (C*KH*KW + 1, OH*OW*N); all offsets are copied in one call, from a read-only view
  that lists them (`sliding_window_view`). Its last row is all ones and the weight matrix (F, C*KH*KW+1)
  ends with the bias, so the bias rides in the matrix multiply. The product (F, OH*OW*N) *is*
  the next layer's input: no transpose back to (N, F, OH, OW), no separate bias pass.
* **PReLU**, in place on each channel's contiguous row: prelu(y) = max(y, a*y) when the slope
  a <= 1 (for y < 0, a*y >= y) and min(y, a*y) when a > 1; two passes instead of three, a
  few channels at a time, so that a*y is written to and read back from the cache.
* **Max pooling**, separable: the running maximum of the window's rows, then of its columns.
  Every slice of either step is strided along H or W but contiguous along (W, N) or N, so
  NumPy runs it with SIMD.
* **Pooling before PReLU.** A PReLU with slope a >= 0 never decreases, so the maximum of a
  window after it is the PReLU of the window's maximum: pooling first gives the same numbers
  (exactly: rounding never decreases either) and leaves the PReLU a quarter of the map. For
  channels with a < 0 that is false, so the convolution's channels are reordered, the
  negative-slope ones first, and only they get their PReLU before the pooling; the next
  convolution's weights take the same order, so nothing else changes.
* **Convolution and 2x2 pooling in one multiply** (P-Net's first layer, 27 inputs per output):
  a pooling window covers a 2x2 block of outputs, which read one 4x4 patch of the input. With
  the patches as columns (16 numbers per pooled pixel and channel, where im2col copies 36) and
  the filters placed at the block's four offsets as rows (`block_weights`), one multiply gives
  all four outputs of every block, and the pooling is the maximum of four contiguous row blocks
  (`conv_pool2_batch_last`). On a layer this thin memory is the limit, so the multiplications
  by zero cost less than the copies saved.
* **Fully connected.** The features (C, h, w, N) flatten to (C*h*w, N), which is the NCHW
  flatten order, transposed: out.T = w.T @ x + b. The output heads are one matrix multiply,
  their weights stacked.

On the detector's work R-Net runs almost twice as fast this way, O-Net and P-Net 15-25% faster
(benchmarks/README.md).

The result equals ``net.forward`` (in inference mode) up to float32 rounding: the sums run in
another order and the PReLU is computed another way. ``tests/test_batch_last.py`` checks that on
random nets and inputs. Only inference: dropout is the identity and nothing is cached.

Why not train in this layout too? A prototype of the backward passes in it (its gradients equal
the layers' to float32 rounding) made R-Net's training step slower, not faster: arrays of a
whole training batch overflow the cache, and there the layers' cache-sized slices of the batch
(`layers.batch_chunks`) matter more than the layout.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from layers import Conv2D, Dropout, Flatten, Linear, MaxPool2D, PReLU, ReLU
from layers.checks import require_float, require_ndim
from layers.shapes import conv_output_size

from pipeline.fast.versions import NetVersions


def conv_batch_last(x: np.ndarray, w_aug: np.ndarray, KH: int, KW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Convolution of x (C, H, W, N) by w_aug (F, C*KH*KW + 1): the weights w (F, C, KH, KW)
    flattened, then the bias as the last column. Returns (F, OH, OW, N), C-contiguous."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    C, H, W, N = x.shape
    OH, OW = conv_output_size(H, KH, stride), conv_output_size(W, KW, stride)
    cols = np.empty((C * KH * KW + 1, OH * OW * N), dtype=x.dtype)
    cols[-1] = 1  # multiplies the bias column of w_aug
    # every window offset (p, q) at once: a read-only view (C, OH, OW, N, KH, KW) of x, copied
    # in one call (measured 35-45% faster on batches of crops than one copy per offset)
    windows = sliding_window_view(x, (KH, KW), axis=(1, 2))[:, ::stride, ::stride][:, :OH, :OW]
    np.copyto(cols[:-1].reshape(C, KH, KW, OH, OW, N), windows.transpose(0, 4, 5, 1, 2, 3))
    return (w_aug.astype(x.dtype, copy=False) @ cols).reshape(-1, OH, OW, N)


PRELU_BLOCK = 65_536  # numbers per pass of prelu_rows_: its scaled copy stays in the L2 cache


def prelu_rows_(y: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """PReLU in place on y (C, ...), channel c being y[c] (contiguous); alpha: (C,). Returns y.

    prelu(y) = max(y, a*y) for a <= 1 and min(y, a*y) for a > 1: both pick y where y > 0 and
    a*y where y <= 0. A few channels at a time (about PRELU_BLOCK numbers; one channel, times
    its slope as a scalar, when a channel is that long), so that a*y is written to and read
    back from the cache, not from memory: measured 20-50% faster on the detector's maps than
    one pass over the whole array.
    """
    if not y.flags.c_contiguous:
        raise ValueError("prelu_rows_ works in place: y must be C-contiguous")
    rows = y.reshape(y.shape[0], -1)  # a view, so that the result lands in y
    alpha = alpha.astype(y.dtype, copy=False)
    per_pass = max(1, PRELU_BLOCK // max(rows.shape[1], 1))
    buffer = np.empty((min(per_pass, len(rows)), rows.shape[1]), dtype=y.dtype)
    steep = np.flatnonzero(alpha > 1).tolist()  # rare; the max below then keeps these rows as set
    for c0 in range(0, len(rows), per_pass):
        part = rows[c0 : c0 + per_pass]
        scaled = buffer[: len(part)]
        if per_pass == 1:
            np.multiply(part[0], alpha[c0], out=scaled[0])  # a scalar slope: NumPy's fastest loop
        else:
            np.multiply(part, alpha[c0 : c0 + per_pass, None], out=scaled)
        for i in [c - c0 for c in steep if c0 <= c < c0 + len(part)]:
            np.minimum(part[i], scaled[i], out=scaled[i])
            part[i] = scaled[i]
        np.maximum(part, scaled, out=part)
    return y


def _running_max(x: np.ndarray, axis: int, size: int, stride: int, out_len: int) -> np.ndarray:
    """Max pooling along one axis of x: out[i] = max of x[i*stride : i*stride + size], windows
    cut at the end of the axis (Caffe's ceil mode; every window starts inside)."""
    n = x.shape[axis]

    def along(part):
        index = [slice(None)] * x.ndim
        index[axis] = part
        return tuple(index)

    def every_stride(start, count):
        return along(slice(start, start + stride * (count - 1) + 1, stride))

    def reach(offset):  # how many windows reach this offset
        return min(out_len, -(-(n - offset) // stride))

    if size == 1 or reach(1) <= 0:
        return x[every_stride(0, out_len)].copy()
    shape = list(x.shape)
    shape[axis] = out_len
    out = np.empty(shape, dtype=x.dtype)
    # the first two offsets in one pass, written straight into out (no copy of the first)
    both = reach(1)
    np.maximum(x[every_stride(0, both)], x[every_stride(1, both)], out=out[along(slice(0, both))])
    if both < out_len:  # the last window holds a single element (ceil mode)
        out[along(slice(both, out_len))] = x[along(slice(stride * both, stride * (out_len - 1) + 1, stride))]
    for offset in range(2, size):
        count = reach(offset)
        if count > 0:
            head = out[along(slice(0, count))]
            np.maximum(head, x[every_stride(offset, count)], out=head)
    return out


def maxpool_batch_last(x: np.ndarray, size: int, stride: int, ceil_mode: bool) -> np.ndarray:
    """Max pooling of x (C, H, W, N): rows first, then columns. Returns (C, OH, OW, N)."""
    OH = conv_output_size(x.shape[1], size, stride, ceil=ceil_mode)
    OW = conv_output_size(x.shape[2], size, stride, ceil=ceil_mode)
    return _running_max(_running_max(x, 1, size, stride, OH), 2, size, stride, OW)


# A convolution with few inputs per output (C*KH*KW at most this) followed by 2x2/2 max pooling
# runs as one matrix multiply over 2x2 blocks (`conv_pool2_batch_last`): P-Net's first layer.
BLOCK_MAX_INPUTS = 64


def block_weights(w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The weights of `conv_pool2_batch_last` for a convolution w (F, C, KH, KW), b (F,).

    Returns (4*F, C*(KH+1)*(KW+1) + 1): row (u, v, f) is filter f placed at offset (u, v)
    inside a (KH+1) x (KW+1) patch, zero elsewhere, then its bias. Multiplied by the patch,
    row (u, v, f) gives the convolution's output f at position (u, v) of a 2x2 block.
    """
    F, C, KH, KW = w.shape
    placed = np.zeros((2, 2, F, C, KH + 1, KW + 1), dtype=w.dtype)
    for u in range(2):
        for v in range(2):
            placed[u, v, :, :, u : u + KH, v : v + KW] = w
    return np.concatenate([placed.reshape(4 * F, -1), np.tile(b, 4)[:, None]], axis=1)


def conv_pool2_batch_last(x: np.ndarray, w_blocks: np.ndarray, KH: int, KW: int, ceil_mode: bool,
                          alpha: np.ndarray, k: int) -> np.ndarray:
    """Convolution (stride 1, no padding), PReLU and 2x2/2 max pooling of x (C, H, W, N) in
    one matrix multiply. Returns (F, PH, PW, N), equal to `conv_batch_last`, `prelu_rows_` and
    `maxpool_batch_last` one after the other.

    w_blocks: `block_weights` (4*F, C*(KH+1)*(KW+1) + 1); alpha: (F,) PReLU slopes, the k with
    a negative slope first (see `_pool_before_prelu`). A pooling window covers the outputs of a
    2x2 block, and the block reads one (KH+1) x (KW+1) patch of x. So the columns are the
    patches, one per pooled pixel (PH*PW*N of them), and one multiply gives the four outputs
    of every block as four row blocks of F rows; the pooling is then the maximum of those four
    contiguous blocks. The patches overlap less than the windows of im2col: (KH+1)*(KW+1) = 16
    numbers per pooled pixel and channel instead of 4*KH*KW = 36, at the price of zeros in
    w_blocks.
    """
    C, H, W, N = x.shape
    OH, OW = H - KH + 1, W - KW + 1  # the convolution's output
    PH = conv_output_size(OH, 2, 2, ceil=ceil_mode)
    PW = conv_output_size(OW, 2, 2, ceil=ceil_mode)
    F = w_blocks.shape[0] // 4
    # Patch row r of block I is x row 2I + r: split x by the parity of rows and columns once,
    # so that every patch offset below is a plain slice. Zeros where a ceil-mode block runs
    # past the edge (those outputs are replaced below).
    rows, cols = PH + KH // 2, PW + KW // 2
    phases = np.zeros((2, 2, C, rows, cols, N), dtype=x.dtype)
    for a in range(2):
        for b in range(2):
            part = x[:, a : a + 2 * rows - 1 : 2, b : b + 2 * cols - 1 : 2]
            phases[a, b, :, : part.shape[1], : part.shape[2]] = part
    patches = np.empty((C * (KH + 1) * (KW + 1) + 1, PH * PW * N), dtype=x.dtype)
    patches[-1] = 1  # multiplies the bias column
    view = patches[:-1].reshape(C, KH + 1, KW + 1, PH, PW, N)
    for r in range(KH + 1):
        for q in range(KW + 1):
            view[:, r, q] = phases[r % 2, q % 2, :, r // 2 : r // 2 + PH, q // 2 : q // 2 + PW]
    out = (w_blocks.astype(x.dtype, copy=False) @ patches).reshape(2, 2, F, PH, PW, N)
    if 2 * PH > OH:  # ceil mode, odd height: the last blocks' second row lies outside
        out[1, :, :, -1] = out[0, :, :, -1]
    if 2 * PW > OW:
        out[:, 1, :, :, -1] = out[:, 0, :, :, -1]
    alpha = alpha.astype(x.dtype, copy=False)
    if k:  # negative slopes: the PReLU before the maximum
        for u in range(2):
            for v in range(2):
                prelu_rows_(out[u, v, :k], alpha[:k])
    pooled = np.maximum(out[0, 0], out[0, 1])
    np.maximum(pooled, out[1, 0], out=pooled)
    np.maximum(pooled, out[1, 1], out=pooled)
    if k < F:
        prelu_rows_(pooled[k:], alpha[k:])
    return pooled


def _with_bias(w_mat: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F, D) weights and (F,) bias -> (F, D + 1), the bias as the last column."""
    return np.concatenate([w_mat, b[:, None]], axis=1)


def _affine(w_t: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """w_t (M, D) @ x (D, N) + b (M,) as a column: (M, N). The output is smaller than x here,
    so adding the bias afterwards is cheaper than a row of ones under x."""
    out = w_t.astype(x.dtype, copy=False) @ x
    out += b[:, None].astype(x.dtype, copy=False)
    return out


def _pool_before_prelu(layers, arrays) -> dict[int, int]:
    """Find each convolution -> PReLU -> max pooling, and order its channels so that the k with
    a negative slope come first (see the module doc). layers: [(name, module)]; arrays: per
    layer, its weights by name, replaced here by reordered copies (the net is not touched).
    Returns {index of the PReLU: k} for the PReLUs that can wait for the pooling."""
    found = {}
    for i in range(len(layers) - 2):
        conv, prelu, pool = (layer for _, layer in layers[i : i + 3])
        if not (isinstance(conv, Conv2D) and isinstance(prelu, PReLU) and isinstance(pool, MaxPool2D)):
            continue
        negative = arrays[i + 1]["alpha"] < 0
        order = np.argsort(~negative, kind="stable")  # the negative slopes first, each group in order
        if np.any(order != np.arange(order.size)):
            if not (i + 3 < len(layers) and isinstance(layers[i + 3][1], Conv2D)):
                continue  # the next layer could not take the new channel order: keep the PReLU first
            arrays[i] = {"w": arrays[i]["w"][order], "b": arrays[i]["b"][order]}
            arrays[i + 1] = {"alpha": arrays[i + 1]["alpha"][order]}
            arrays[i + 3] = {**arrays[i + 3], "w": arrays[i + 3]["w"][:, order]}
        found[i + 1] = int(negative.sum())
    return found


def _unchanged(h, flat):
    """A step that leaves the features as they are (a layer folded into the one before)."""
    return h, flat


def _fits_blocks(conv, pool) -> bool:
    """Whether a convolution and the 2x2 pooling after it run faster as `conv_pool2_batch_last`:
    stride 1, no padding, pooling 2x2/2, and few inputs per output (the matrix multiply of such
    a layer is limited by memory, so the blocks' extra multiplications by zero cost little)."""
    C, KH, KW = conv.params["w"].value.shape[1:]
    return (conv.stride == 1 and conv.pad == 0 and pool.size == 2 and pool.stride == 2
            and C * KH * KW <= BLOCK_MAX_INPUTS)


class BatchLast:
    """Inference of a multi-head net (`nets.heads.MultiHeadNet`: P-Net, R-Net, O-Net) in the
    (C, H, W, N) layout; ``forward`` takes and returns what ``net.forward`` does.

    The weights are read once, when the BatchLast is made: make a new one after training the
    net. Layers it knows: Conv2D, PReLU, ReLU, MaxPool2D, Flatten, Linear, Dropout (the identity); heads:
    Linear, or Conv2D with a 1x1 kernel. Any other layer is a TypeError naming it.
    """

    def __init__(self, net):
        self.net = net
        layers = list(net.trunk.children.items())
        arrays = [{key: param.value for key, param in layer.params.items()} for _, layer in layers]
        negative_first = _pool_before_prelu(layers, arrays)  # {index of a PReLU: k}
        splits = {}
        for i, k in negative_first.items():
            splits[i] = splits[i + 1] = (k, arrays[i]["alpha"])
        self.steps = [self._step(name, layer, arrays[i], splits.get(i)) for i, (name, layer) in enumerate(layers)]
        for i, k in negative_first.items():  # convolution -> PReLU -> pooling at i-1, i, i+1
            conv, pool = layers[i - 1][1], layers[i + 1][1]
            if _fits_blocks(conv, pool):
                fused = self._conv_pool2(pool, arrays[i - 1], arrays[i]["alpha"], k)
                self.steps[i - 1 : i + 2] = [fused, _unchanged, _unchanged]
        heads = [net.children[name] for name in net.head_names]
        self.head_sizes = [head.params["b"].value.size for head in heads]
        self.head_w = np.concatenate([self._head_matrix(name, head) for name, head in zip(net.head_names, heads)])
        self.head_b = np.concatenate([head.params["b"].value for head in heads])

    @staticmethod
    def _head_matrix(name, head) -> np.ndarray:
        w = head.params["w"].value
        if isinstance(head, Linear):
            return w.T  # Linear keeps (D, M)
        if isinstance(head, Conv2D) and w.shape[2:] == (1, 1):
            return w.reshape(w.shape[0], -1)
        raise TypeError(f"BatchLast: head {name!r} is a {type(head).__name__}; it runs Linear or 1x1 Conv2D heads")

    @staticmethod
    def _conv_pool2(pool, arrays, alpha, k):
        """The three steps convolution -> PReLU -> 2x2/2 pooling as one (`conv_pool2_batch_last`):
        arrays, the convolution's (reordered) weights; alpha, the slopes; k, how many are < 0."""
        w_blocks, (KH, KW) = block_weights(arrays["w"], arrays["b"]), arrays["w"].shape[2:]
        return lambda h, flat: (conv_pool2_batch_last(h, w_blocks, KH, KW, pool.ceil_mode, alpha, k), False)

    @staticmethod
    def _step(name, layer, arrays, split=None):
        """One layer as a function of (h, flat) -> (h, flat); flat: h is (D, N) features.
        arrays: the layer's weights (reordered by `_pool_before_prelu`); split: for a PReLU
        that waits for the pooling after it, and for that pooling, (k, slopes): the first k
        channels (slope < 0) get their PReLU before the pooling, the others after it."""
        if isinstance(layer, Conv2D):
            w, b = arrays["w"], arrays["b"]
            w_aug, (KH, KW) = _with_bias(w.reshape(w.shape[0], -1), b), w.shape[2:]
            return lambda h, flat: (conv_batch_last(h, w_aug, KH, KW, layer.stride, layer.pad), False)
        if isinstance(layer, PReLU):
            alpha = arrays["alpha"]
            if split is None:
                return lambda h, flat: (prelu_rows_(h, alpha), flat)
            k = split[0]

            def prelu_negative_slopes(h, flat):  # the channels with a >= 0 wait for the pooling
                if k:
                    prelu_rows_(h[:k], alpha[:k])
                return h, flat
            return prelu_negative_slopes
        if isinstance(layer, ReLU):
            return lambda h, flat: (np.maximum(h, 0, out=h), flat)
        if isinstance(layer, MaxPool2D):
            if split is None:
                return lambda h, flat: (maxpool_batch_last(h, layer.size, layer.stride, layer.ceil_mode), False)
            k, alpha = split

            def pool_then_prelu(h, flat):
                pooled = maxpool_batch_last(h, layer.size, layer.stride, layer.ceil_mode)
                if k < len(alpha):
                    prelu_rows_(pooled[k:], alpha[k:])
                return pooled, False
            return pool_then_prelu
        if isinstance(layer, Linear):
            w_t, b = np.ascontiguousarray(arrays["w"].T), arrays["b"]
            return lambda h, flat: (_affine(w_t, b, h.reshape(-1, h.shape[-1])), True)
        if isinstance(layer, Flatten):
            return lambda h, flat: (h.reshape(-1, h.shape[-1]), True)
        if isinstance(layer, Dropout):
            return lambda h, flat: (h, flat)
        raise TypeError(f"BatchLast: layer {name!r} is a {type(layer).__name__}, which it cannot run")

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """x: (N, C, H, W) float (float32 in the detector; float64 computes in float64, as
        ``net.forward`` does). Returns head name -> (N, K) after fully connected layers,
        (N, K, OH, OW) after convolutions, as ``net.forward`` in inference mode."""
        x = require_float(x, "x")
        require_ndim(x, (4,), "x", "(N, C, H, W)")
        h, flat = np.moveaxis(x, 0, -1), False  # (C, H, W, N)
        if x.shape[0] > 1:  # one copy, so that each window slice reads long runs; one image
            h = np.ascontiguousarray(h)  # (a strip of P-Net's level) is read in place
        for step in self.steps:
            h, flat = step(h, flat)
        spatial = h.shape[1:-1]
        features = h.reshape(h.shape[0], -1)  # (D, OH*OW*N) or (D, N)
        out = _affine(self.head_w, self.head_b, features)  # (sum of K, OH*OW*N)
        result, start = {}, 0
        for name, size in zip(self.net.head_names, self.head_sizes):
            part = out[start : start + size].reshape(size, *spatial, -1)  # (K, [OH, OW,] N)
            result[name] = np.moveaxis(part, -1, 0)  # (N, K[, OH, OW])
            start += size
        return result


class BatchLastCache:
    """`BatchLast` of a net, made again only when the net's weights, layers or their settings
    changed (`pipeline.fast.versions.NetVersions`).

    ``cache(net)`` compares the net's weights with a copy kept from the last call (about a
    quarter of the time of making a BatchLast), so a detector
    that runs many photos does not rebuild its three BatchLasts each time, and still sees
    every change made to the weights in between (training, loading, editing by hand).
    """

    def __init__(self):
        self._versions = NetVersions()
        self._made = {}  # id(net) -> (the net's version, its BatchLast)

    def __getstate__(self):
        """Pickled empty (a BatchLast holds functions made at run time); it fills again."""
        return {"_versions": NetVersions(), "_made": {}}

    def __call__(self, net) -> BatchLast:
        """The BatchLast of ``net`` (a multi-head net, as `BatchLast` takes): the one made at the
        last call if nothing has changed since, else a new one."""
        version = self._versions(net)
        made = self._made.get(id(net))
        if made is not None and made[0] is version:
            return made[1]
        fast = BatchLast(net)
        self._made[id(net)] = (version, fast)
        return fast
