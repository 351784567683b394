"""Saving and loading a net's parameters as .npz files.

Files hold one float32 array per parameter, keyed by the dotted names of
``Module.named_parameters()`` (``conv1.w``, ``prelu1.alpha``, ``face.b``...). Loading never
unpickles (``allow_pickle=False``) and refuses, with a message naming the file and the array,
anything that does not match the net: a missing or extra array, a wrong shape, a non-float
dtype. Saving is atomic (write a temporary file, then rename), so a crash never leaves a
half-written file in place of a good one.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class WeightsError(ValueError):
    """A weights file that cannot be used for this net."""


def read_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, loaded without pickle. Raises WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{path}: not a readable .npz weights file ({exc})") from None


META = "meta."  # arrays named meta.* hold facts about the net (e.g. its threshold), not parameters


def load_weights(module, path) -> dict[str, np.ndarray]:
    """Load the parameters of ``module`` from ``path`` (see the module docstring for checks).
    Returns the file's ``meta.*`` arrays (without the prefix), e.g. a stored threshold."""
    state = read_npz(path)
    meta = {name[len(META):]: value for name, value in state.items() if name.startswith(META)}
    state = {name: value for name, value in state.items() if not name.startswith(META)}
    own = dict(module.named_parameters())
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(f"{path}: arrays do not match {type(module).__name__}: "
                           f"missing {missing}, unexpected {unexpected}")
    for name, param in own.items():
        value = state[name]
        if value.dtype != np.float32:
            raise WeightsError(f"{path}: array {name!r} has dtype {value.dtype}, expected float32")
        if value.shape != param.value.shape:
            raise WeightsError(f"{path}: array {name!r} has shape {value.shape}, expected {param.value.shape}")
    module.load_state_dict(state)
    return meta


def save_arrays(arrays: dict[str, np.ndarray], path) -> None:
    """Write arrays to ``path`` (.npz, uncompressed) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; weights are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_meta(path, **facts) -> None:
    """Add or replace ``meta.<name>`` facts (numbers or arrays) in an existing weights file,
    atomically; the parameters stay as they are. Raises WeightsError naming a missing file."""
    arrays = read_npz(path)
    arrays.update({META + name: np.asarray(value) for name, value in facts.items()})
    save_arrays(arrays, path)


def save_weights(module, path, meta: dict | None = None) -> None:
    """Write the module's parameters (as float32) to ``path`` atomically, with optional
    ``meta`` facts (name -> number or array, stored as ``meta.<name>``)."""
    arrays = {name: p.value.astype(np.float32) for name, p in module.named_parameters()}
    arrays.update({META + name: np.asarray(value) for name, value in (meta or {}).items()})
    save_arrays(arrays, path)
