"""The detector's thread pool: same results with one worker or several."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import MTCNNDetector
from pipeline.parallel import Parallel


def test_map_keeps_order_inside_and_outside_a_session():
    parallel = Parallel(workers=2)
    assert parallel.map(lambda v: v * v, range(5)) == [0, 1, 4, 9, 16]
    with parallel.session():
        assert parallel.map(lambda v: v * v, range(5)) == [0, 1, 4, 9, 16]


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers"):
        Parallel(workers=0)


def test_one_or_two_workers_find_identical_faces():
    image = pytest.importorskip("skimage.data").astronaut()
    one = MTCNNDetector(workers=1).detect(image)
    two = MTCNNDetector(workers=2).detect(image)
    assert len(one) == len(two) == 1
    np.testing.assert_array_equal(one[0].box, two[0].box)
    np.testing.assert_array_equal(one[0].landmarks, two[0].landmarks)
    assert one[0].score == two[0].score
