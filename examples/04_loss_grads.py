"""Loss gradients: softmax + MSE, cross-entropy from logits, and the softmax Jacobian.

With x [2, 4], w [4, 3], b [3] and labels y = [2, 0]:
  1. loss = mean(MSE(one_hot(y), softmax(x @ w + b)))       -> dL/dw, dL/db
  2. loss = mean(CE(one_hot(y), x @ w + b, from_logits=True)) -> dL/dw, dL/db
  3. p = softmax(a): ∂p_i/∂a_j = p_i(δ_ij − p_j), row by row with autograd.grad (retain_graph)
Each is checked against the formula written out in NumPy (float64).

    python examples/04_loss_grads.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

import gpugrad as gg


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (also GPUGRAD_QUICK=1)")
    parser.parse_args(argv)  # nothing here is large: --quick changes nothing
    dev = gg.default_device()
    print(f"device: {dev}")

    x = gg.random.normal([2, 4], seed=1, device=dev)
    w = gg.random.normal([4, 3], seed=2, device=dev)
    b = gg.zeros([3], device=dev)
    y = gg.constant([2, 0], device=dev)
    onehot = gg.one_hot(y, depth=3)

    # 1. softmax, then MSE against the one-hot labels
    with gg.GradientTape() as tape:
        tape.watch([w, b])
        prob = gg.softmax(x @ w + b, axis=1)
        loss = gg.reduce_mean(gg.losses.mse(onehot, prob))
    gw, gb = tape.gradient(loss, [w, b])
    print("softmax + MSE")
    print("w gradients: ", gw)
    print("b gradients: ", gb)

    xn, wn, tn = x.numpy().astype(np.float64), w.numpy().astype(np.float64), onehot.numpy().astype(np.float64)
    p = _softmax(xn @ wn)
    dp = 2.0 * (p - tn) / (3 * 2)  # mean over 3 classes, then over 2 samples
    dz = p * (dp - (dp * p).sum(axis=1, keepdims=True))  # through the softmax Jacobian
    err_mse = max(np.abs(gw.numpy() - xn.T @ dz).max(), np.abs(gb.numpy() - dz.sum(0)).max())

    # 2. cross-entropy straight from the logits (never forms log(softmax))
    with gg.GradientTape() as tape:
        tape.watch([w, b])
        logits = x @ w + b
        loss = gg.reduce_mean(gg.losses.categorical_crossentropy(onehot, logits, from_logits=True))
    cw, cb = tape.gradient(loss, [w, b])
    print("cross-entropy from logits")
    print("w gradients: ", cw)
    print("b gradients: ", cb)
    dz = (p - tn) / 2
    err_ce = max(np.abs(cw.numpy() - xn.T @ dz).max(), np.abs(cb.numpy() - dz.sum(0)).max())

    # 3. the softmax Jacobian, one row per autograd.grad call
    a = gg.random.uniform([3], seed=3, device=dev).requires_grad_()
    p = gg.softmax(a, axis=0)
    p[1].backward()
    try:
        p[1].backward()  # the graph through softmax was freed by the first backward
        freed_error = None
    except RuntimeError as e:
        freed_error = str(e)
        print("second backward:", freed_error)
    p = gg.softmax(a, axis=0)
    rows = [gg.autograd.grad(p[i], [a], retain_graph=i < 2)[0].numpy() for i in range(3)]
    jac = np.stack(rows)
    pv = p.detach().numpy().astype(np.float64)
    formula = pv[:, None] * (np.eye(3) - pv[None, :])  # p_i (δ_ij − p_j)
    print("a =", a.detach().numpy())
    for i in (1, 2):
        print(f"grad of p[{i}] w.r.t. a:", rows[i])
    err_jac = float(np.abs(jac - formula).max())
    print(f"largest difference from the formulas: softmax+MSE {err_mse:.2e}, CE {err_ce:.2e}, "
          f"Jacobian {err_jac:.2e}")

    return {
        "mse_grads": (gw.numpy(), gb.numpy()),
        "ce_grads": (cw.numpy(), cb.numpy()),
        "softmax_jacobian": jac,
        "jacobian_formula": formula,
        "max_error": float(max(err_mse, err_ce, err_jac)),
        "second_backward_error": freed_error,
    }


if __name__ == "__main__":
    main()
