"""Small input checks shared by the layers, so every op words its errors the same way."""

from __future__ import annotations

import numpy as np


def require_float(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Return ``x`` as an ndarray, raising ValueError unless its dtype is floating point."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def require_ndim(x: np.ndarray, ndims: tuple[int, ...], name: str, layout: str) -> None:
    """Raise ValueError naming the expected layout when ``x.ndim`` is not one of ``ndims``."""
    if x.ndim not in ndims:
        raise ValueError(f"{name} must have shape {layout}, got shape {x.shape}")


def require_shape(x: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Raise ValueError when ``x.shape != shape``, naming both."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
