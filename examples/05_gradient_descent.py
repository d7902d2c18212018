"""Gradient descent on J(θ₁, θ₂) = θ₁² + θ₂² from (3, 4).

θ ← θ − α∇J(θ) with ∇J = (2θ₁, 2θ₂), the gradient taken by a tape. Each step multiplies θ by
(1 − 2α), so the path is checked against θ_t = (1 − 2α)ᵗ θ₀. Then the same descent with a learning
rate that is too large (α = 1.05) diverges.

    python examples/05_gradient_descent.py [--quick] [--lr 0.1] [--steps 25]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import gpugrad as gg


def descend(theta0, lr, steps, device):
    """The path of plain gradient descent on J, one (θ₁, θ₂, J) row per step."""
    theta = gg.Variable(np.asarray(theta0, dtype=np.float64), device=device)
    path = []
    for _ in range(steps + 1):
        with gg.GradientTape() as tape:
            j = gg.reduce_sum(theta**2)
        t = theta.numpy()
        path.append((t[0], t[1], j.item()))
        if len(path) > steps:
            break
        grad = tape.gradient(j, theta)
        theta.assign_sub(lr * grad)
    return np.array(path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (also GPUGRAD_QUICK=1)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("GPUGRAD_QUICK") == "1"
    steps = args.steps if args.steps is not None else (10 if quick else 25)
    dev = gg.default_device()
    print(f"device: {dev}")

    path = descend([3.0, 4.0], args.lr, steps, dev)
    print(f"J(θ1, θ2) = θ1² + θ2², learning rate α = {args.lr}")
    print(" step      θ1        θ2          J")
    for i, (t1, t2, j) in enumerate(path):
        print(f"{i:5d}  {t1:8.5f}  {t2:8.5f}  {j:10.6f}")
    expected = np.array([3.0, 4.0]) * (1 - 2 * args.lr) ** np.arange(steps + 1)[:, None]
    err = float(np.abs(path[:, :2] - expected).max())
    print(f"largest difference from (1 - 2α)^t θ0: {err:.2e}")

    big = descend([3.0, 4.0], 1.05, 5, dev)
    print("with α = 1.05 the steps overshoot and J grows:", " ".join(f"{j:.1f}" for j in big[:, 2]))

    return {
        "path": path,
        "final_theta": path[-1, :2],
        "final_J": float(path[-1, 2]),
        "max_error": err,
        "diverging_J": big[:, 2],
    }


if __name__ == "__main__":
    main()
