"""The detector's helper processes (pipeline.fast.helpers): shares run in other processes, see the
shared image, report errors, survive a killed helper, restart when their key changes, and end."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import time

import numpy as np
import pytest

from pipeline.fast.helpers import Helpers, can_fork
from pipeline.fast.parallel import Parallel, join_shares, split_by_weight, split_evenly

from forked import run_forked

pytestmark = pytest.mark.skipif(not can_fork(), reason="helper processes need fork (POSIX)")


class Owner:
    """Stands for a detector: what a helper's copy of it holds."""

    def __init__(self, value):
        self.value = value


def where_and_value(owner, add):
    return os.getpid(), owner.value + add


def total_of(owner, array, rows):
    return float(array[rows].sum())


def fail(owner, message):
    raise ValueError(message)


def fail_here_only(owner, parent_pid):
    if os.getpid() == parent_pid:
        raise KeyError("the parent's share failed")
    return os.getpid()


def test_shares_run_in_the_helpers_in_order():
    helpers = Helpers(2)
    try:
        helpers.start(Owner(10))
        results = helpers.run(where_and_value, Owner(10), [(1,), (2,), (3,)])
        assert [value for _, value in results] == [11, 12, 13]
        pids = [pid for pid, _ in results]
        assert pids[0] == os.getpid() and len(set(pids)) == 3
        assert helpers.run(where_and_value, Owner(0), [(5,)]) == [(os.getpid(), 5)]  # fewer shares
        with pytest.raises(ValueError, match="3 shares"):
            Helpers(1).run(where_and_value, Owner(0), [(1,), (2,), (3,)])
        with pytest.raises(RuntimeError, match="call start first"):
            Helpers(1).run(where_and_value, Owner(0), [(1,), (2,)])
    finally:
        helpers.close()


def test_a_helper_is_a_fork_of_the_owner_when_it_started():
    helpers, owner = Helpers(1), Owner(1)
    try:
        helpers.start(owner)
        owner.value = 100  # after the fork: the helper still has 1 ...
        assert [v for _, v in helpers.run(where_and_value, owner, [(0,), (0,)])] == [100, 1]
        helpers.start(owner, key=("new weights",))  # ... until a new key starts a new helper
        assert [v for _, v in helpers.run(where_and_value, owner, [(0,), (0,)])] == [100, 100]
    finally:
        helpers.close()


def test_the_shared_array_is_seen_without_a_copy():
    helpers, owner = Helpers(1), Owner(0)
    try:
        helpers.start(owner, shared_bytes=4000)
        array = helpers.shared_array((10, 100), np.float32)
        array[:] = np.arange(1000, dtype=np.float32).reshape(10, 100)  # written after the fork
        results = helpers.run(total_of, owner, [(array, slice(0, 5)), (array, slice(5, 10))])
        assert results == [float(array[:5].sum()), float(array[5:].sum())]
        with pytest.raises(ValueError, match="does not fit"):
            helpers.shared_array((10**9,), np.float32)
    finally:
        helpers.close()


def test_a_larger_image_or_another_key_starts_new_helpers_and_the_same_keeps_them():
    helpers, owner, key = Helpers(1), Owner(0), (object(),)
    try:
        def helper_pid():
            return helpers.run(where_and_value, owner, [(0,), (0,)])[1][0]

        helpers.start(owner, key, shared_bytes=1000)
        first = helper_pid()
        helpers.start(owner, key, shared_bytes=1000)
        assert helper_pid() == first
        helpers.start(owner, key, shared_bytes=64 << 20)  # more than the 16 MB it has
        second = helper_pid()
        assert second != first
        helpers.start(owner, (object(),), shared_bytes=1000)
        assert helper_pid() != second
    finally:
        helpers.close()


def test_an_error_in_a_helper_is_raised_here_with_its_traceback():
    helpers, owner = Helpers(1), Owner(0)
    try:
        helpers.start(owner)
        with pytest.raises(ValueError, match="bad share") as caught:
            helpers.run(where_and_value_or_fail, owner, [(1,), ("bad share",)])
        assert any("facecascade-helper-1" in note for note in caught.value.__notes__)
        assert helpers.run(where_and_value, owner, [(1,), (2,)])[1][1] == 2  # still in step
    finally:
        helpers.close()


def where_and_value_or_fail(owner, argument):
    if isinstance(argument, str):
        fail(owner, argument)
    return where_and_value(owner, argument)


def test_an_error_here_still_reads_the_helpers_answers():
    helpers, owner = Helpers(1), Owner(0)
    try:
        helpers.start(owner)
        with pytest.raises(KeyError, match="parent's share"):
            helpers.run(fail_here_only, owner, [(os.getpid(),), (os.getpid(),)])
        assert helpers.run(where_and_value, owner, [(1,), (2,)])[1][1] == 2  # the pipes are in step
    finally:
        helpers.close()


def test_a_killed_helper_has_its_share_done_here_and_is_replaced():
    helpers, owner = Helpers(1), Owner(5)
    try:
        helpers.start(owner)
        process = helpers._processes[0][0]
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=10)
        with pytest.warns(RuntimeWarning, match="ended unexpectedly"):
            results = helpers.run(where_and_value, owner, [(1,), (2,)])
        assert results == [(os.getpid(), 6), (os.getpid(), 7)]
        helpers.start(owner)
        pid, value = helpers.run(where_and_value, owner, [(1,), (2,)])[1]
        assert pid != os.getpid() and value == 7
    finally:
        helpers.close()


def test_helpers_end_with_their_owner_parallel():
    parallel, owner = Parallel(2), Owner(0)
    with parallel.session(owner):
        results = parallel.run(where_and_value, owner, [(1,), (2,)])
    assert results[1][0] != os.getpid()
    processes = [process for process, _ in parallel._helpers._processes]
    assert all(process.is_alive() for process in processes)
    del parallel
    gc.collect()
    for process in processes:
        process.join(timeout=10)
    assert not any(process.is_alive() for process in processes)


def test_parallel_runs_shares_on_threads_without_an_owner_or_with_one_worker():
    owner = Owner(3)
    for parallel, session in [(Parallel(2), {}), (Parallel(1), {"owner": owner})]:
        with parallel.session(**session):
            assert parallel.run(where_and_value, owner, [(1,), (2,)]) == [(os.getpid(), 4), (os.getpid(), 5)]
            assert type(parallel.shared_array((2, 3), np.float32)) is np.ndarray


def test_a_parallel_with_helpers_pickles_without_them():
    parallel, owner = Parallel(2), Owner(0)
    with parallel.session(owner):
        parallel.run(where_and_value, owner, [(1,), (2,)])
    copy = pickle.loads(pickle.dumps(parallel))
    with copy.session(owner):
        pid, value = copy.run(where_and_value, owner, [(1,), (2,)])[1]
    assert value == 2 and pid != os.getpid()
    copy._helpers.close()
    parallel._helpers.close()


def test_a_process_forked_after_a_session_starts_its_own_helpers():
    """The child inherits the helpers' pipes; it must not use them (the parent's answers would
    go astray) nor wait for helpers that are not its children."""
    import multiprocessing

    parallel, owner = Parallel(2), Owner(7)
    with parallel.session(owner):
        parent_helper = parallel.run(where_and_value, owner, [(0,), (0,)])[1][0]
    queue = multiprocessing.get_context("fork").SimpleQueue()

    def child():
        with parallel.session(owner):
            queue.put(parallel.run(where_and_value, owner, [(1,), (2,)]))

    run_forked(child)
    (child_pid, one), (its_helper, two) = queue.get()
    assert (one, two) == (8, 9) and its_helper not in (parent_helper, child_pid, os.getpid())
    with parallel.session(owner):  # the parent's own helper still answers, in step
        assert parallel.run(where_and_value, owner, [(0,), (0,)])[1] == (parent_helper, 7)
    parallel._helpers.close()


def test_shares_split_evenly_and_by_weight():
    assert split_evenly(5, 2) == [range(0, 3), range(3, 5)]
    assert split_evenly(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert [len(r) for r in split_evenly(10, 4)] == [3, 3, 2, 2]
    assert split_evenly(1, 3) == [range(0, 1)]
    assert split_evenly(0, 2) == []
    areas = [409, 205, 104, 52, 26, 13, 7, 3]  # a pyramid's level areas
    assert split_by_weight(areas, 2) == [[0], [1, 2, 3, 4, 5, 6, 7]]
    assert split_by_weight(areas, 1) == [list(range(8))]
    assert split_by_weight([5], 4) == [[0]]
    for parts in (2, 3, 5):
        groups = split_by_weight(areas, parts)
        assert sorted(i for group in groups for i in group) == list(range(8))
        # each group's results (one per index, in the group's order) go back in index order
        assert join_shares(groups, [[areas[i] * 10 for i in group] for group in groups]) == [a * 10 for a in areas]
    assert join_shares([], []) == []


def test_helpers_end_promptly_while_another_fork_of_this_process_lives():
    """Every fork closes its copies of the helpers' pipes (os.register_at_fork), so a helper
    sees its pipe close when this process closes it, not when the last fork has ended."""
    import multiprocessing

    helpers, owner = Helpers(1), Owner(0)
    helpers.start(owner)
    other = multiprocessing.get_context("fork").Process(target=time.sleep, args=(20,), daemon=True)
    other.start()
    try:
        start = time.perf_counter()
        helpers.close()
        assert time.perf_counter() - start < 3  # close() would wait 5 s, then kill
    finally:
        other.kill()
        other.join()


def unpicklable_result(owner):
    return lambda: None


def test_an_answer_that_does_not_pickle_is_an_error_here():
    helpers, owner = Helpers(1), Owner(0)
    try:
        helpers.start(owner)
        with pytest.raises(RuntimeError, match="could not be pickled"):
            helpers.run(unpicklable_result, owner, [(), ()])
        assert helpers.run(where_and_value, owner, [(1,), (2,)])[1][1] == 2  # still in step
    finally:
        helpers.close()


def test_a_session_inside_another_gives_the_helpers_back():
    parallel, owner = Parallel(2), Owner(1)
    with parallel.session(owner):
        helper = parallel.run(where_and_value, owner, [(0,), (0,)])[1][0]
        with parallel.session(owner):
            assert parallel.run(where_and_value, owner, [(0,), (0,)])[1][0] == helper
        assert parallel.run(where_and_value, owner, [(0,), (0,)])[1][0] == helper  # still there after
        assert helper != os.getpid()
    assert parallel.run(where_and_value, owner, [(0,), (0,)]) == [(os.getpid(), 1)] * 2  # outside: here
    parallel.close()
