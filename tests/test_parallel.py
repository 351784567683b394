"""The detector's thread pool: same results with one worker or several."""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import FLOAT32_FORWARD, assert_close

from pipeline import MTCNNDetector
from pipeline.fast.parallel import Parallel

from forked import run_forked


def test_map_keeps_order_inside_and_outside_a_session():
    parallel = Parallel(workers=2)
    assert parallel.map(lambda v: v * v, range(5)) == [0, 1, 4, 9, 16]
    with parallel.session():
        assert parallel.map(lambda v: v * v, range(5)) == [0, 1, 4, 9, 16]


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers"):
        Parallel(workers=0)


def test_one_or_two_workers_find_the_same_faces():
    # Two workers split R-Net's and O-Net's crops into two batches. Where OpenBLAS picks its
    # matrix-multiply blocking by the number of rows (its Haswell kernels on an AMD EPYC do),
    # a half batch rounds in the last float32 bits differently from the whole one: the same
    # faces, equal to float32 rounding (a box moved by 1.5e-5 px was seen), not bit for bit.
    image = pytest.importorskip("skimage.data").astronaut()
    one = MTCNNDetector(workers=1).detect(image)
    two = MTCNNDetector(workers=2).detect(image)
    assert len(one) == len(two) == 1
    assert_close(two[0].box, one[0].box, FLOAT32_FORWARD, what="box")
    assert_close(two[0].landmarks, one[0].landmarks, FLOAT32_FORWARD, what="landmarks")
    assert two[0].score == pytest.approx(one[0].score, abs=1e-6)


def test_the_threads_are_kept_between_sessions_and_end_with_the_parallel():
    import gc
    import threading

    parallel = Parallel(2)
    names = set()
    for _ in range(3):
        with parallel.session():
            names |= set(parallel.map(lambda _: threading.current_thread().name, range(8)))
    assert len(names) <= 2 and all(name.startswith("facecascade") for name in names)
    threads = list(parallel._threads[0]._threads)
    del parallel
    gc.collect()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX-only")
def test_a_process_forked_after_a_session_makes_its_own_threads():
    """The child inherits the pool object but not its threads; it must not wait for them."""
    parallel = Parallel(2)
    with parallel.session():
        assert parallel.map(lambda i: i * i, range(4)) == [0, 1, 4, 9]

    def child():
        with parallel.session():
            assert parallel.map(lambda i: i + 1, range(6)) == [1, 2, 3, 4, 5, 6]

    assert run_forked(child, "the forked child, waiting for its parent's threads,") == 0


def test_one_detector_used_from_two_threads_at_once_gives_each_its_own_faces():
    """Two threads share one detector (default workers): their detections run one after the
    other (`Parallel.exclusive`), each finding what it finds alone (they once mixed: 7 faces
    came back as 5, 2 as 4, with errors inside the helpers)."""
    import threading

    skimage = pytest.importorskip("skimage.data")
    images = [skimage.astronaut(), np.ascontiguousarray(skimage.astronaut()[::-1, ::-1])]
    detector = MTCNNDetector()
    alone = [[(f.box.tolist(), f.score) for f in detector.detect(image)] for image in images]
    results, errors = {0: [], 1: []}, []

    def work(k):
        try:
            for _ in range(4):
                results[k].append([(f.box.tolist(), f.score) for f in detector.detect(images[k])])
        except Exception as error:  # raised in the test below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    for k in (0, 1):
        assert results[k] == [alone[k]] * 4
