"""What the procedural long-bone phantoms (femur, humerus) share: image formats, CT numbers of
their tissues and the blends of their implicit surfaces."""

import numpy as np

FORMATS = ("nii.gz", "mha", "nrrd")
"""Image formats a phantom is written in."""

HU_SOFT_TISSUE = 40.0   # muscle
HU_MARROW = 45.0        # diaphyseal (yellow/red) marrow
HU_CORTEX_DIAPHYSIS = 1700.0
HU_CORTEX_PROXIMAL = 1500.0
HU_LYTIC = 40.0
HU_BLASTIC = 1000.0


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum of two distance fields with blend radius k (mm): a fillet instead of a crease."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k / 4.0


def smoothstep(s: np.ndarray) -> np.ndarray:
    """3s² − 2s³ on s clipped to [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)
