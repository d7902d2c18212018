"""Tape basics: watching tensors, the once-only tape, persistent tapes, None for an unconnected source.

The TensorFlow notebook of the course, line for line, on gpugrad:

    python examples/01_tape_basics.py [--quick]
"""

from __future__ import annotations

import argparse

import gpugrad as gg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (also GPUGRAD_QUICK=1)")
    parser.parse_args(argv)  # nothing here is large: --quick changes nothing
    print(f"device: {gg.default_device()}")

    w = gg.constant(1.0)
    x = gg.constant(2.0)
    y = x * w  # computed before the tape: the tape never saw it

    with gg.GradientTape() as tape:
        tape.watch([w])
        y2 = x * w
    grad1 = tape.gradient(y, [w])
    print("grad1", grad1)  # [None]: y was not recorded by this tape

    with gg.GradientTape() as tape:
        tape.watch([w])
        y2 = x * w
    grad2 = tape.gradient(y2, [w])
    print("grad2", grad2)  # [2.0]

    try:
        tape.gradient(y2, [w])  # a non-persistent tape answers once
        error = None
    except RuntimeError as e:
        error = str(e)
        print(e)

    with gg.GradientTape(persistent=True) as tape:
        tape.watch([w])
        y2 = x * w
    persistent = [tape.gradient(y2, [w])[0].item() for _ in range(2)]
    print("persistent tape, asked twice:", persistent)

    # Variables are watched without asking: dy/dx of y = x² at x = 3
    v = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        z = v**2
    dz_dv = tape.gradient(z, v)
    print("dy_dx of x**2 at 3:", dz_dv.numpy())

    return {
        "grad1": grad1[0],
        "grad2": grad2[0].item(),
        "second_call_error": error,
        "persistent": persistent,
        "dy_dx": dz_dv.item(),
    }


if __name__ == "__main__":
    main()
