"""Activation functions and their gradients on a linspace: sigmoid, tanh and relu.

The tape's gradients are compared with the closed forms σ' = σ(1 − σ), tanh' = 1 − tanh² and
relu'(x) = [x > 0].

    python examples/03_activation_grads.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

import gpugrad as gg


def _grad(fn, a):
    with gg.GradientTape() as tape:
        tape.watch(a)
        y = fn(a)
    (g,) = tape.gradient(y, [a])
    return y, g


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (also GPUGRAD_QUICK=1)")
    parser.parse_args(argv)  # nothing here is large: --quick changes nothing
    dev = gg.default_device()
    print(f"device: {dev}")

    a = gg.linspace(-10.0, 10.0, 10, device=dev)
    y, g = _grad(gg.sigmoid, a)
    print("A: ", a)
    print("y: ", y)
    print("Gradient of a: ", [g])
    s = y.numpy().astype(np.float64)
    err_sigmoid = float(np.max(np.abs(g.numpy() - s * (1 - s))))

    wide = gg.linspace(-100.0, 100.0, 10, device=dev)
    print("sigmoid on [-100, 100]: ", gg.sigmoid(wide).numpy())

    b = gg.linspace(-1.0, 1.0, 10, device=dev)
    t, gt = _grad(gg.tanh, b)
    print("tanh: ", t.numpy())
    print("tanh gradient (1 - tanh²): ", gt.numpy())
    tv = t.numpy().astype(np.float64)
    err_tanh = float(np.max(np.abs(gt.numpy() - (1 - tv * tv))))

    r, gr = _grad(gg.relu, b)
    print("relu: ", r.numpy())
    print("relu gradient: ", gr.numpy())
    err_relu = float(np.max(np.abs(gr.numpy() - (b.numpy() > 0))))

    print(f"largest difference from the closed forms: sigmoid {err_sigmoid:.2e}, tanh {err_tanh:.2e}, "
          f"relu {err_relu:.2e}")
    return {
        "x": a.numpy(),
        "sigmoid": y.numpy(),
        "sigmoid_grad": g.numpy(),
        "sigmoid_wide": gg.sigmoid(wide).numpy(),
        "tanh": t.numpy(),
        "tanh_grad": gt.numpy(),
        "relu": r.numpy(),
        "relu_grad": gr.numpy(),
        "max_error": max(err_sigmoid, err_tanh, err_relu),
    }


if __name__ == "__main__":
    main()
