"""A deterministic digits-like data set: 8x8 images of the ten digits drawn from a 5x7 font,
shifted by up to one pixel, with random stroke strength, speckle and Gaussian noise."""

import numpy as np

_FONT = {
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}


def glyphs() -> np.ndarray:
    """The ten 5x7 glyphs as a (10, 7, 5) float array."""
    return np.array([[[float(c) for c in row] for row in _FONT[d]] for d in range(10)])


def make_digits(n: int, seed: int = 0, noise: float = 0.2):
    """``n`` images of shape (8, 8) in [0, 16] (as scikit-learn's digits) and their labels."""
    rng = np.random.default_rng(seed)
    g = glyphs()
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 8, 8))
    dy = rng.integers(0, 2, n)  # the 7x5 glyph fits an 8x8 frame at 2 x 4 offsets
    dx = rng.integers(0, 4, n)
    for i in range(n):
        images[i, dy[i] : dy[i] + 7, dx[i] : dx[i] + 5] = g[labels[i]]
    images *= rng.uniform(0.6, 1.0, (n, 1, 1))
    images *= rng.random((n, 8, 8)) > 0.05  # lost pixels
    images += noise * rng.standard_normal((n, 8, 8))
    return (np.clip(images, 0.0, 1.0) * 16.0).astype(np.float32), labels.astype(np.int64)
