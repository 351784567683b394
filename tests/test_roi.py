"""Mapping image boxes to feature-map cells (SPPNet's rule, He et al., ECCV 2014, Appendix A;
see pipeline/detection/roi.py)."""

from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.roi import box_to_cells


def test_worked_example_from_the_spec():
    # S = 16: x from 50 to 200 -> cells 4..12; y from 40 to 130 -> cells 3..8
    assert box_to_cells([[50, 40, 200, 130]], 16, 0, 40, 40).tolist() == [[4, 3, 12, 8]]


def test_small_box_gets_the_nearest_cell_and_results_are_clamped():
    assert box_to_cells([[100, 100, 110, 110]], 16, 0, 40, 40).tolist() == [[7, 7, 7, 7]]
    assert box_to_cells([[-50, -50, 1000, 1000]], 16, 0, 10, 12).tolist() == [[0, 0, 11, 9]]


@given(x1=st.floats(0, 500), y1=st.floats(0, 500), w=st.floats(30, 300), h=st.floats(30, 300),
       stride=st.sampled_from([2, 4, 8, 16]), offset=st.sampled_from([0.0, 5.5, 6.0]))
def test_kept_cells_have_centres_inside_the_box(x1, y1, w, h, stride, offset):
    left, top, right, bottom = box_to_cells([[x1, y1, x1 + w, y1 + h]], stride, offset, 10_000, 10_000)[0]
    for cell, low, high in ((left, x1, x1 + w), (right, x1, x1 + w), (top, y1, y1 + h), (bottom, y1, y1 + h)):
        assert low < offset + stride * cell < high
    # and the next cell outward is outside (unless the map ends there: cell -1 does not exist)
    assert left == 0 or offset + stride * (left - 1) <= x1
    assert offset + stride * (right + 1) >= x1 + w
