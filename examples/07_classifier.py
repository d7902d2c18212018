"""A two-layer classifier, Keras style: Dense(10, relu) → Dense(10) trained with softmax
cross-entropy from the logits on ten Gaussian blobs.

The data are made here (fixed seed): ten class centres in 8 dimensions and unit-variance points
around them, split into a training and a test set. The model is the course's
``Sequential([Dense(10, activation='relu'), Dense(10)])``; the loss is sparse categorical
cross-entropy on the logits, the optimizer Adam. The script asserts the test accuracy it states.

    python examples/07_classifier.py [--quick] [--epochs N] [--verbose {0,1,2}]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import gpugrad as gg

CLASSES = 10
FEATURES = 8
TARGET_ACCURACY = 0.93


def make_blobs(n, rng, centres):
    """``n`` points: a class id each, and its centre plus unit Gaussian noise."""
    labels = rng.integers(0, len(centres), size=n)
    x = centres[labels] + rng.standard_normal((n, centres.shape[1]))
    return x.astype(np.float32), labels.astype(np.int64)


def sparse_ce_from_logits(labels, logits):
    return gg.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer epochs (also GPUGRAD_QUICK=1)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("GPUGRAD_QUICK") == "1"
    n_train, n_test = (1500, 500) if quick else (8000, 2000)
    epochs = args.epochs if args.epochs is not None else (8 if quick else 20)
    dev = gg.default_device()
    print(f"device: {dev}")

    rng = np.random.default_rng(7)
    centres = rng.normal(0.0, 2.0, size=(CLASSES, FEATURES))
    x_train, y_train = make_blobs(n_train, rng, centres)
    x_test, y_test = make_blobs(n_test, rng, centres)
    print(f"{CLASSES} Gaussian blobs in {FEATURES} dimensions: {n_train} training and {n_test} test points")

    gg.random.seed(0)
    model = gg.nn.Sequential([
        gg.nn.Dense(10, activation="relu"),
        gg.nn.Dense(CLASSES),  # logits
    ])
    model.compile(
        optimizer=gg.optimizers.Adam(learning_rate=0.01),
        loss=sparse_ce_from_logits,
        metrics=["accuracy"],
    )
    model.build((None, FEATURES))
    model.summary()

    t0 = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test), verbose=args.verbose
    )
    fit_s = time.perf_counter() - t0

    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=256)
    logits = model.predict(x_test, batch_size=256)
    predicted = np.argmax(logits, axis=-1)
    by_hand = float(np.mean(predicted == y_test))
    print(f"trained {epochs} epochs in {fit_s:.2f} s ({fit_s / epochs * 1e3:.0f} ms per epoch)")
    print(f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f} (from predict: {by_hand:.4f})")
    assert test_acc >= TARGET_ACCURACY, f"test accuracy {test_acc:.4f} is below {TARGET_ACCURACY}"
    print(f"reached the stated accuracy: {test_acc:.4f} >= {TARGET_ACCURACY}")

    return {
        "history": history.history,
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc),
        "predict_accuracy": by_hand,
        "target_accuracy": TARGET_ACCURACY,
        "epochs": epochs,
        "seconds": fit_s,
    }


if __name__ == "__main__":
    main()
