"""``python -m gpugrad``: which device was found, and the core examples of the course notes."""

from __future__ import annotations

import numpy as np

import gpugrad as gg


def main() -> None:
    dev = gg.default_device()
    print(f"gpugrad {gg.__version__}: default device {dev}", end="")
    if gg.cuda.is_available():
        from gpugrad import backend

        cp = backend.cupy()
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        print(f" ({props['name'].decode()}, CuPy {cp.__version__})")
    else:
        print(" (no usable CUDA GPU: running on NumPy)")
    print("graph engine:", "compiled (gpugrad/native/engine.c)" if gg.graph.ENGINE is not None
          else "Python (no C compiler or Python headers found, or GPUGRAD_NATIVE=0)")

    # a tape gradient: d(x²)/dx at 3
    x = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        y = x**2
    print("d(x^2)/dx at x=3:", tape.gradient(y, x).item())

    # a second derivative with nested tapes: y = x·w + b
    w, b, x = gg.Variable(1.0), gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape() as t1:
        with gg.GradientTape() as t2:
            y = x * w + b
        dy_dw, dy_db = t2.gradient(y, [w, b])
    print("dy/dw =", dy_dw.item(), " dy/db =", dy_db.item(), " d2y/dw2 =", t1.gradient(dy_dw, w))
    x3 = gg.Variable(0.5)
    with gg.GradientTape() as t1:
        with gg.GradientTape() as t2:
            s = gg.sigmoid(x3)
        ds = t2.gradient(s, x3)
    print("sigmoid''(0.5) =", round(t1.gradient(ds, x3).item(), 6))

    # gradient descent fit of y = 2x + 1
    rng = np.random.default_rng(0)
    xs = gg.constant(rng.standard_normal((100, 1)).astype("float32"), device=dev)
    ys = 2.0 * xs + 1.0
    k = gg.Variable(gg.zeros((1, 1), device=dev))
    c = gg.Variable(gg.zeros((1,), device=dev))
    for _ in range(1000):
        with gg.GradientTape() as tape:
            loss = gg.mean((ys - (xs @ k + c)) ** 2)
        gk, gc = tape.gradient(loss, [k, c])
        k.assign_sub(0.01 * gk)
        c.assign_sub(0.01 * gc)
    print(f"fit y = 2x + 1 by 1000 GD steps: w = {k.numpy().item():.4f}, b = {c.numpy().item():.4f}, "
          f"loss = {loss.item():.2e}")


if __name__ == "__main__":
    main()
