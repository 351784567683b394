"""Run a test's function in a forked child process, failing the test if the child hangs."""

from __future__ import annotations

import multiprocessing

import pytest


def run_forked(target, what: str = "the forked child", timeout: float = 60) -> int:
    """Call target() in a fork of this process and wait for it; the test fails (naming ``what``)
    if it has not ended after ``timeout`` seconds. Returns the child's exit code."""
    process = multiprocessing.get_context("fork").Process(target=target)
    process.start()
    process.join(timeout=timeout)
    if process.is_alive():
        process.kill()
        pytest.fail(f"{what} hung")
    return process.exitcode
