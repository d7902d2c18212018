"""Every example runs with --quick and returns the numbers it prints."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(name, *args):
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--quick", *args])


def test_every_example_is_tested():
    tested = {
        "01_tape_basics.py", "02_second_order.py", "03_activation_grads.py", "04_loss_grads.py",
        "05_gradient_descent.py", "06_linear_regression.py", "07_classifier.py", "08_custom_op.py",
    }
    assert {p.name for p in EXAMPLES.glob("[0-9]*.py")} == tested


def test_01_tape_basics(capsys):
    r = run("01_tape_basics.py")
    assert r["grad1"] is None
    assert r["grad2"] == 2.0
    assert "persistent" in r["second_call_error"]
    assert r["persistent"] == [2.0, 2.0]
    assert r["dy_dx"] == 6.0
    assert "grad1 [None]" in capsys.readouterr().out


def test_02_second_order():
    r = run("02_second_order.py")
    assert (r["dy_dw"], r["dy_db"], r["d2y_dw2"]) == (3.0, 1.0, None)
    assert (r["curved_dy_dw"], r["curved_d2y_dw2"], r["curved_d2y_db2"]) == (6.0, 6.0, 2.0)
    assert r["cube_derivatives"] == [3.0, 6.0, 6.0]


def test_03_activation_grads():
    r = run("03_activation_grads.py")
    assert r["max_error"] < 1e-6
    seed_values = [4.5386874e-05, 1.8632649e-01, 4.5416677e-05]  # what the course notes printed
    np.testing.assert_allclose(r["sigmoid_grad"][[0, 4, 9]], seed_values, rtol=1e-3)
    np.testing.assert_allclose(r["relu_grad"], [0] * 5 + [1] * 5)
    np.testing.assert_allclose(r["tanh"][[0, -1]], [-0.7616, 0.7616], atol=1e-4)


def test_04_loss_grads():
    r = run("04_loss_grads.py")
    assert r["max_error"] < 1e-6
    jac = r["softmax_jacobian"]
    np.testing.assert_allclose(jac.sum(axis=0), 0, atol=1e-6)  # Σ_i ∂p_i/∂a_j = 0
    np.testing.assert_allclose(jac, jac.T, atol=1e-7)  # p_i(δij − p_j) is symmetric
    assert "retain_graph" in r["second_backward_error"]
    gb = r["ce_grads"][1]
    assert abs(gb.sum()) < 1e-6  # the logits' gradient rows sum to zero


def test_05_gradient_descent():
    r = run("05_gradient_descent.py")
    path = r["path"]
    assert len(path) == 11 and tuple(path[0]) == (3.0, 4.0, 25.0)
    assert r["max_error"] < 1e-12
    assert r["final_J"] == pytest.approx(25 * 0.8 ** 20)
    assert np.all(np.diff(r["diverging_J"]) > 0)


def test_06_linear_regression():
    r = run("06_linear_regression.py")
    w_ls, b_ls = r["lstsq"]
    assert w_ls == pytest.approx(2.0, abs=0.05) and b_ls == pytest.approx(1.0, abs=0.05)
    for key in ("tape_loop", "fit"):
        w, b = r[key]
        assert abs(w - w_ls) < 1e-3 and abs(b - b_ls) < 1e-3, key
    assert r["fit_losses"][-1] < r["fit_losses"][0] / 100


def test_07_classifier():
    r = run("07_classifier.py", "--verbose", "0")
    assert r["test_accuracy"] >= r["target_accuracy"] == 0.93
    assert r["predict_accuracy"] == pytest.approx(r["test_accuracy"])
    h = r["history"]
    assert len(h["loss"]) == r["epochs"] and h["loss"][-1] < h["loss"][0]
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_08_custom_op():
    r = run("08_custom_op.py", "--device", "cpu")
    assert r["max_error"] < 1e-12 and r["float32_error"] < 1e-5
    assert r["compiled"] in (True, None)  # None: no NVRTC here
    assert r["dy"][len(r["dy"]) // 2] == pytest.approx(0.5)  # swish'(0) = σ(0)
    assert r["d2y"][len(r["d2y"]) // 2] == pytest.approx(0.5)  # swish''(0) = 2σ(0)(1 − σ(0))


@pytest.mark.gpu
def test_08_custom_op_on_cuda():
    cpu = run("08_custom_op.py", "--device", "cpu")
    r = run("08_custom_op.py", "--device", "cuda")
    assert r["device"].startswith("cuda") and r["max_error"] < 1e-12 and r["float32_error"] < 1e-5
    for k in ("y", "dy", "d2y"):
        np.testing.assert_allclose(r[k], cpu[k], rtol=1e-12, atol=1e-15)
