"""Second-order derivatives with nested tapes.

For y = x·w + b: dy/dw = x, dy/db = 1 and d²y/dw² is None (dy/dw = x does not depend on w).
For y = x·w² + b²: d²y/dw² = 2x and d²y/db² = 2. The third derivative of w³ comes from three tapes.

    python examples/02_second_order.py [--quick]
"""

from __future__ import annotations

import argparse

import gpugrad as gg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (also GPUGRAD_QUICK=1)")
    parser.parse_args(argv)  # nothing here is large: --quick changes nothing
    print(f"device: {gg.default_device()}")

    w = gg.Variable(1.0)  # Variables are watched by default
    b = gg.Variable(2.0)
    x = gg.Variable(3.0)

    with gg.GradientTape() as tape1:
        with gg.GradientTape() as tape2:
            y = x * w + b
        dy_dw, dy_db = tape2.gradient(y, [w, b])
    d2y_dw2 = tape1.gradient(dy_dw, w)

    print("dy_dw: ", dy_dw)
    print("dy_db: ", dy_db)
    print("d2y_dw2: ", d2y_dw2)

    # a function with curvature in both parameters
    with gg.GradientTape(persistent=True) as outer:
        with gg.GradientTape() as inner:
            y = x * w**2 + b**2
        dw, db = inner.gradient(y, [w, b])
    d2w = outer.gradient(dw, w)
    d2b = outer.gradient(db, b)
    print("y = x*w**2 + b**2:  dy_dw =", dw.item(), " d2y_dw2 =", d2w.item(), " d2y_db2 =", d2b.item())

    # third order: d³(w³)/dw³ = 6
    with gg.GradientTape() as t1:
        with gg.GradientTape() as t2:
            with gg.GradientTape() as t3:
                c = w**3
            g1 = t3.gradient(c, w)
        g2 = t2.gradient(g1, w)
    g3 = t1.gradient(g2, w)
    print("d/dw, d2/dw2, d3/dw3 of w**3 at w = 1:", g1.item(), g2.item(), g3.item())

    return {
        "dy_dw": dy_dw.item(),
        "dy_db": dy_db.item(),
        "d2y_dw2": d2y_dw2,
        "curved_dy_dw": dw.item(),
        "curved_d2y_dw2": d2w.item(),
        "curved_d2y_db2": d2b.item(),
        "cube_derivatives": [g1.item(), g2.item(), g3.item()],
    }


if __name__ == "__main__":
    main()
