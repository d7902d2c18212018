"""Whole-model files: ``model.save(path)`` and ``gg.nn.load_model(path)``.

One file holds the architecture (the model's ``get_config()`` as JSON), the compile settings
where they can be written down (optimizer and loss by class and config, metric names) and every
weight as a host array. The container is NumPy's ``.npz`` (a zip of ``.npy`` arrays; the JSON
is stored as a string array): it needs nothing beyond NumPy, is read back with
``allow_pickle=False`` (no code runs on load), and any NumPy can open it. The file is written at
exactly the path given (no suffix is added). Optimizer state (moments) is not saved.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import losses as _losses
from .. import optimizers as _optimizers
from . import activations, initializers
from .layers import LAYERS

FORMAT = "gpugrad.model/1"


def _class_config(obj) -> dict:
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def layer_config(layer) -> dict:
    if not hasattr(layer, "get_config"):
        raise TypeError(
            f"cannot save layer {layer!r}: it has no get_config() (plain callables cannot be written "
            "to a model file; use a Layer subclass with get_config, or save_weights)"
        )
    return _class_config(layer)


def layer_from_config(spec: dict, custom_objects=None):
    from .model import Sequential  # noqa: PLC0415  (model imports this module)

    name = spec["class_name"]
    custom = custom_objects or {}
    cls = custom.get(name) or LAYERS.get(name) or (Sequential if name == "Sequential" else None)
    if cls is None:
        raise ValueError(
            f"unknown layer class {name!r} in the model config; pass it in custom_objects={{'{name}': {name}}}"
        )
    config = dict(spec["config"])
    for key, known in (("activation", activations.ACTIVATIONS), ("kernel_initializer", initializers.INITIALIZERS),
                       ("bias_initializer", initializers.INITIALIZERS)):
        value = config.get(key)
        if not isinstance(value, str):
            continue
        if value in custom:
            config[key] = custom[value]
        elif value.lower() not in known:
            raise ValueError(
                f"unknown {key} {value!r} in the model config; pass it in custom_objects={{'{value}': {value}}}"
            )
    if cls is Sequential:
        return Sequential.from_config(config, custom_objects)
    return cls.from_config(config)


def _compile_config(model) -> dict | None:
    """Optimizer, loss and metrics as JSON, or None when one of them cannot be written down."""
    opt, loss = model.optimizer, model.loss
    if opt is None or loss is None:
        return None
    try:  # the public class (a distributed wrapper is saved as the optimizer it wraps)
        cls = next(c for c in type(opt).__mro__ if getattr(_optimizers, c.__name__, None) is c)
        opt_cfg = {"class_name": cls.__name__, "config": opt.get_config()}
        json.dumps(opt_cfg)
    except (TypeError, ValueError, AttributeError, StopIteration):
        return None
    if isinstance(loss, str):
        loss_cfg = loss
    elif isinstance(loss, _losses.Loss):
        loss_cfg = _class_config(loss)
    else:
        named = [k for k, v in _losses.LOSSES.items() if v is loss]
        if not named:
            return None
        loss_cfg = named[0]
    if not all(isinstance(m, str) for m in model._metric_ids):
        return None
    return {"optimizer": opt_cfg, "loss": loss_cfg, "metrics": list(model._metric_ids)}


def save_model(model, filepath) -> None:
    """Write ``model`` (architecture, compile settings, weights) to exactly ``filepath``."""
    if not model.built:
        raise ValueError("save: the model has no weights yet; call it on data (or model.build(input_shape)) first")
    config = {
        "format": FORMAT,
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "compile": _compile_config(model),
    }
    arrays = {f"weight_{i:04d}": v.numpy() for i, v in enumerate(model.weights)}
    arrays["__config__"] = np.array(json.dumps(config))
    path = os.fspath(filepath)
    with open(path, "wb") as f:  # a file object: np.savez then adds no suffix
        np.savez(f, **arrays)


def load_model(filepath, custom_objects=None, compile: bool = True):  # noqa: A002 (Keras' name)
    """A model written by ``model.save``: rebuilt from its config, weights set, and compiled again
    (when ``compile`` and the settings were saved). ``custom_objects`` maps names to classes or
    functions the file refers to (custom layers, activations)."""
    from .model import Sequential  # noqa: PLC0415

    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_model: no such file {path!r}")
    with np.load(path, allow_pickle=False) as f:
        if "__config__" not in f.files:
            raise ValueError(
                f"load_model: {path!r} is not a gpugrad model file (no config); a file from save_weights "
                "is loaded with model.load_weights"
            )
        meta = json.loads(str(f["__config__"]))
        weights = [f[k] for k in sorted(k for k in f.files if k.startswith("weight_"))]
    if meta.get("format") != FORMAT:
        raise ValueError(f"load_model: {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta["class_name"] != "Sequential":
        raise ValueError(f"load_model: unknown model class {meta['class_name']!r}")
    model = Sequential.from_config(meta["config"], custom_objects)
    if not model.built:
        raise ValueError(f"load_model: the config in {path!r} does not say the input shape")
    model.set_weights(weights)
    if compile and meta.get("compile"):
        c = meta["compile"]
        loss = c["loss"]
        if isinstance(loss, dict):
            loss = _losses.LOSS_CLASSES[loss["class_name"]].from_config(loss["config"])
        opt_cls = getattr(_optimizers, c["optimizer"]["class_name"])
        model.compile(optimizer=opt_cls.from_config(c["optimizer"]["config"]), loss=loss, metrics=c["metrics"])
    return model
