"""One-time conversion of the released MTCNN weights into this project's .npz files.

The weights are Kaipeng Zhang's released MTCNN models (MIT licence, 2016). We take them from
the MIT-licensed ``mtcnn`` package on PyPI (Ivan de Paz Centeno), which ships them as
joblib/lz4 lists of float32 arrays in TensorFlow layout. Run once, by a developer:

    python -m pip install ".[convert]"          # joblib + lz4, dev-only
    python -m pip download --no-deps mtcnn==1.0.0 -d /tmp/mtcnn && unzip /tmp/mtcnn/*.whl -d /tmp/mtcnn
    python -m nets.convert_weights /tmp/mtcnn/mtcnn/assets/weights

The shipped files in nets/weights/ were made this way; nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .mtcnn import ONet, PNet, RNet
from .weights import WEIGHTS_DIR, save_arrays

# The order in which the mtcnn package lists its arrays (Keras layer order).
TF_ARRAY_ORDER = {
    "pnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "box", "face"],
    "rnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "box", "face"],
    "onet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4",
             "fc5", "prelu5", "box", "landmarks", "face"],
}
NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def tf_to_numpy_layout(arrays: list[np.ndarray], layer_names: list[str], first_fc: str | None,
                       last_conv_hw: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Map the TensorFlow-layout arrays of one net to this project's parameter names and layout.

    arrays: the flat list (kernel, bias for conv/dense; slopes for PReLU) in ``layer_names`` order.
    first_fc: name of the first fully connected layer (None for P-Net); last_conv_hw: the
    (H, W) of the feature map that layer flattens (3, 3 for R-Net and O-Net).

    The transposed-image convention of the released MTCNN models (Zhang et al., IEEE SPL 2016;
    MTCNNv1/detect_face.m hands MATLAB arrays to matcaffe). The original models were trained in MATLAB,
    whose (row, column) arrays Caffe read as (width, height): the nets saw every image
    transposed. A kernel K applied to a transposed image equals K transposed applied to the
    upright image, so the mtcnn package (like facenet-pytorch) already swapped each kernel's
    two spatial axes and runs on upright images. What remains is the first fully connected
    layer: its rows were ordered for the transposed map, i.e. by (x, y, c). The package
    re-creates that order with a Permute before Flatten; we instead reorder the rows once,
    here, into the C order (c, y, x) of our plain (N, C, H, W) flatten. After this, nothing
    in the nets or the detector knows the models were ever transposed.

    Layouts: TF conv kernel (KH, KW, C, F) -> ours (F, C, KH, KW); TF dense (D, M) is ours too;
    PReLU slopes (1, 1, C) or (C,) -> (C,).
    """
    state, i = {}, 0
    for name in layer_names:
        if name.startswith("prelu"):
            state[f"{name}.alpha"] = arrays[i].reshape(-1)
            i += 1
            continue
        kernel, bias = arrays[i], arrays[i + 1]
        i += 2
        if kernel.ndim == 4:  # convolution: (KH, KW, C, F) -> (F, C, KH, KW)
            w = kernel.transpose(3, 2, 0, 1)
        elif name == first_fc:  # rows ordered (x, y, c) -> (c, y, x)
            H, W = last_conv_hw
            C = kernel.shape[0] // (H * W)
            w = kernel.reshape(W, H, C, -1).transpose(2, 1, 0, 3).reshape(kernel.shape)
        else:
            w = kernel
        state[f"{name}.w"] = np.ascontiguousarray(w, dtype=np.float32)
        state[f"{name}.b"] = np.ascontiguousarray(bias, dtype=np.float32)
    if i != len(arrays):
        raise ValueError(f"expected {i} arrays, got {len(arrays)}")
    return state


def convert(source_dir: Path, out_dir: Path = WEIGHTS_DIR) -> None:
    """Read pnet/rnet/onet.lz4 from ``source_dir``, check them against our nets, write .npz."""
    import joblib  # dev-only dependency, see the module docstring

    for key, net_class in NETS.items():
        arrays = [np.asarray(a, dtype=np.float32) for a in joblib.load(source_dir / f"{key}.lz4")]
        first_fc = {"pnet": None, "rnet": "fc4", "onet": "fc5"}[key]
        state = tf_to_numpy_layout(arrays, TF_ARRAY_ORDER[key], first_fc, None if key == "pnet" else (3, 3))
        net_class().load_state_dict(state)  # refuses any mismatch in names or shapes
        save_arrays(state, out_dir / f"{key}.npz")
        print(f"wrote {out_dir / (key + '.npz')}: {sum(a.size for a in state.values()):,} parameters")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", type=Path, help="folder with pnet.lz4, rnet.lz4, onet.lz4")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    convert(args.source_dir, args.out)


if __name__ == "__main__":
    main()
