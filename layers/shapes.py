"""Output-size arithmetic shared by convolution and pooling.

For an input of ``size`` pixels, a window of ``k`` pixels moved by ``stride`` over the
input padded by ``pad`` on both sides gives

    floor mode (convolution, PyTorch pooling):  (size + 2*pad - k) // stride + 1
    ceil mode (Caffe pooling):                  ceil((size + 2*pad - k) / stride) + 1

In ceil mode the last window may hang over the bottom/right edge; it then pools only
what is inside. A window that would *start* beyond the padded input is dropped, the rule
PyTorch uses (Caffe applies it only when pad > 0, where it matters in practice).
"""

from __future__ import annotations


def conv_output_size(size: int, k: int, stride: int = 1, pad: int = 0, ceil: bool = False) -> int:
    """Number of window positions along one axis.

    size: input length in pixels (>= 1); k: window length; stride >= 1; pad >= 0 pixels on
    each side; ceil: Caffe's ceil mode. Returns an int >= 1, or raises ValueError naming the
    numbers when the window does not fit.
    """
    for name, value, low in (("size", size, 1), ("kernel", k, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if ceil and pad > k // 2:
        # Caffe's and PyTorch's ceil-mode rule assumes the padding is at most half a window;
        # with more, a window could lie wholly in the padding.
        raise ValueError(f"ceil mode needs pad <= kernel // 2, got pad {pad} for kernel {k}")
    span = size + 2 * pad - k
    if span < 0:
        raise ValueError(
            f"kernel {k} is larger than the padded input {size} + 2*{pad} = {size + 2 * pad}"
        )
    if not ceil:
        return span // stride + 1
    out = -(-span // stride) + 1  # ceil division with integers only
    if (out - 1) * stride >= size + pad:  # last window would start outside the input
        out -= 1
    return out
