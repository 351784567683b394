"""The gathered SPP (spp_forward) against its loop-over-bins twin (spp_forward_naive)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from layers import spp_backward, spp_backward_naive, spp_forward, spp_forward_naive


@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       levels=st.sampled_from([(4, 2, 1), (3, 2, 1), (6, 3, 2, 1), (1,)]), seed=st.integers(0, 10))
def test_fast_spp_equals_naive_forward_and_backward(N, C, H, W, levels, seed):
    rng = np.random.default_rng(seed)
    x = rng.permutation(N * C * H * W).reshape(N, C, H, W).astype(np.float64)  # no ties
    out, cache = spp_forward(x, levels)
    out_naive, cache_naive = spp_forward_naive(x, levels)
    np.testing.assert_array_equal(out, out_naive)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(spp_backward(dout, cache), spp_backward_naive(dout, cache_naive), rtol=1e-12, atol=0)


def test_ties_go_to_the_same_cell_as_the_naive_version():
    x = np.ones((1, 2, 4, 5))
    out, cache = spp_forward(x)
    _, cache_naive = spp_forward_naive(x)
    dout = np.arange(out.size, dtype=np.float64).reshape(out.shape)
    np.testing.assert_array_equal(spp_backward(dout, cache), spp_backward_naive(dout, cache_naive))


def test_float32_is_kept():
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 5)).astype(np.float32)
    out, cache = spp_forward(x)
    assert out.dtype == np.float32
    assert spp_backward(np.ones_like(out), cache).dtype == np.float32
