"""End-to-end gradient checks of the MTCNN nets: every parameter of every head and layer."""

from __future__ import annotations

import numpy as np
import pytest

from layers.gradcheck import assert_gradients_ok, check_module
from nets import ONet, PNet, RNet


@pytest.mark.parametrize("net_class, size", [(PNet, 14), (RNet, 24), (ONet, 48)])
def test_net_backward_matches_numerical_gradient(net_class, size):
    net = net_class(rng=np.random.default_rng(1)).astype(np.float64).eval()
    x = np.random.default_rng(2).standard_normal((2, 3, size, size))
    # one random direction per array: full checks of ~400k parameters would take minutes
    assert_gradients_ok(check_module(net_class.__name__, net, x, full=False, seed=3))


def test_net_backward_with_some_heads_only():
    net = ONet(rng=np.random.default_rng(1)).astype(np.float64).eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 48, 48))
    out = net.forward(x)
    dx_face = net.backward({"face": np.ones_like(out["face"])})
    assert dx_face.shape == x.shape
    with pytest.raises(ValueError, match="no such heads"):
        net.backward({"nose": np.ones(3)})
