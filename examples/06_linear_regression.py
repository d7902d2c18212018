"""Fitting y = 2x + 1 by gradient descent, three ways, against the closed form.

The data are the course's, 100 points y = 2x + 1, plus a little noise (σ = 0.1) so that the
least-squares answer is not exactly (2, 1) and the comparison means something.
  1. the course's loop: a Dense(1) layer, a GradientTape around the forward pass and the MSE,
     then ``assign_sub(learning_rate * grad)`` for each trainable variable, 1000 times;
  2. Keras style: ``Sequential([Dense(1)])``, ``compile('sgd', 'mse')``, ``fit`` (one batch of all
     100 points per epoch, so each epoch is one step of the same gradient descent);
  3. the closed form: least squares with ``numpy.linalg.lstsq``.
The slope and intercept of 1 and 2 agree with 3 to 1e-3.

    python examples/06_linear_regression.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import gpugrad as gg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs for fit (also GPUGRAD_QUICK=1)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("GPUGRAD_QUICK") == "1"
    steps = 1000
    epochs = 600 if quick else 1000
    dev = gg.default_device()
    print(f"device: {dev}")

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(size=(100, 1)).astype(np.float32)
    noise = 0.1 * rng.standard_normal(size=(100, 1))
    y_np = (2.0 * x_np + 1.0 + noise).astype(np.float32)  # the true model is 2x + 1
    x = gg.constant(x_np, device=dev)
    y_true = gg.constant(y_np, device=dev)

    # 3. closed form: [x 1] @ [w b] = y in the least-squares sense
    design = np.hstack([x_np, np.ones_like(x_np)]).astype(np.float64)
    (w_ls, b_ls), *_ = np.linalg.lstsq(design, y_np[:, 0].astype(np.float64), rcond=None)
    print(f"closed form (lstsq):        w = {w_ls:.6f}, b = {b_ls:.6f}")

    # 1. the tape loop of the course notes
    gg.random.seed(0)
    layer = gg.nn.Dense(1, activation="linear")
    with gg.GradientTape() as tape:
        y_pred = layer(x)
        loss = gg.reduce_mean((y_true - y_pred) ** 2)
    grad = tape.gradient(loss, layer.trainable_variables)
    print("first gradients:", [g.numpy().ravel().tolist() for g in grad])

    learning_rate = 0.01
    t0 = time.perf_counter()
    for _ in range(steps):
        with gg.GradientTape() as tape:
            y_pred = layer(x)  # forward pass
            loss = gg.reduce_mean((y_true - y_pred) ** 2)
        grad = tape.gradient(loss, layer.trainable_variables)
        for v, g in zip(layer.trainable_variables, grad, strict=True):
            v.assign_sub(learning_rate * g)
    loop_s = time.perf_counter() - t0
    w_loop, b_loop = layer.kernel.item(), layer.bias.item()
    print(f"tape loop ({steps} steps):    w = {w_loop:.6f}, b = {b_loop:.6f}, "
          f"loss = {loss.item():.3e}  [{loop_s:.2f} s]")

    # 2. Keras style
    gg.random.seed(0)
    model = gg.nn.Sequential([gg.nn.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    t0 = time.perf_counter()
    history = model.fit(x_np, y_np, epochs=epochs, batch_size=len(x_np), verbose=0)
    fit_s = time.perf_counter() - t0
    w_fit, b_fit = model[0].kernel.item(), model[0].bias.item()
    losses = history.history["loss"]
    for e in sorted({0, 1, 9, epochs // 10, epochs // 2, epochs - 1}):
        print(f"  epoch {e + 1:4d}: loss {losses[e]:.3e}")
    print(f"Sequential.fit ({epochs} epochs): w = {w_fit:.6f}, b = {b_fit:.6f}  [{fit_s:.2f} s]")

    err_loop = max(abs(w_loop - w_ls), abs(b_loop - b_ls))
    err_fit = max(abs(w_fit - w_ls), abs(b_fit - b_ls))
    print(f"largest difference from the closed form: tape loop {err_loop:.1e}, fit {err_fit:.1e}")
    assert err_loop < 1e-3 and err_fit < 1e-3, "gradient descent did not reach the least-squares solution"

    return {
        "lstsq": (float(w_ls), float(b_ls)),
        "tape_loop": (w_loop, b_loop),
        "fit": (w_fit, b_fit),
        "fit_losses": losses,
        "max_error": float(max(err_loop, err_fit)),
        "seconds": {"tape_loop": loop_s, "fit": fit_s},
    }


if __name__ == "__main__":
    main()
