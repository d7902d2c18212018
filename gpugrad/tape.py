"""GradientTape: TensorFlow's way of asking for gradients, over the shared graph."""

from __future__ import annotations

import contextlib

import numpy as np

from . import backend, graph, tree
from .graph import EMPTY, STATE, composed_vjp  # noqa: F401  (composed_vjp: re-exported)
from .tensor import Tensor, Variable, is_float


def flatten(struct):
    """Leaves of a pytree (JAX's order: dict keys sorted) and a function that rebuilds the structure."""
    leaves, treedef = tree.flat(struct)
    return leaves, treedef.unflatten


class GradientTape:
    """Records operations on watched tensors so that gradients can be taken afterwards.

    >>> with GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = x * x
    >>> dy_dx = tape.gradient(y, x)
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self._id = graph.new_graph_id()
        self._persistent = persistent
        self._autowatch = watch_accessed_variables
        self._watched: dict[int, Tensor] = {}
        self._nodes: list = []  # every node recorded on this tape, released with the tape
        self._recording = False
        self._used = False
        self._marked = False  # some watched tensor carries this tape's id

    def __del__(self):
        # A dropped tape frees its graph and saved arrays, even where results computed under it
        # live on (as TensorFlow frees the graph with the tape); those keep their values.
        try:
            self._pop()
            self._unmark()
            graph.release_graph(self._id, self._nodes)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    # -- recording --------------------------------------------------------------------------------
    def __enter__(self):
        self._push()
        return self

    def __exit__(self, *exc):
        self._pop()
        self._unmark()
        return False

    def _push(self):
        if self._recording:
            raise RuntimeError("this GradientTape is already recording")
        graph.start_graph(self._id, self._nodes)
        if self._autowatch:
            STATE.autowatch = STATE.autowatch + (self,)
        self._recording = True

    def _pop(self):
        if not self._recording:
            return
        graph.stop_graph(self._id)
        if self._autowatch:
            aw = STATE.autowatch
            # the innermost tape is the last (a tape is pushed once: _push refuses a second time)
            STATE.autowatch = aw[:-1] if aw and aw[-1] is self else tuple(t for t in aw if t is not self)
        self._recording = False

    def _unmark(self):
        """Forget this tape on the watched tensors (they may outlive it by far)."""
        if not self._marked:  # nothing watched since the last time
            return
        self._marked = False
        me = frozenset((self._id,))
        for t in self._watched.values():
            if t._tapes:
                t._tapes = t._tapes - me or None

    def watch(self, tensor) -> None:
        """Record operations on ``tensor`` (a Tensor, or a nested list of them) from now on."""
        leaves, _ = flatten(tensor)
        if tensor is None:
            raise TypeError("GradientTape.watch takes Tensors, got None")
        for t in leaves:
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch takes Tensors, got {type(t).__name__}")
            if not is_float(t.dtype):
                raise TypeError(
                    f"GradientTape.watch: a tensor of dtype {t.dtype} cannot be differentiated; "
                    "only floating tensors can be watched (cast it with .astype('float32'))"
                )
            self._watch_one(t)

    def _watch_one(self, t: Tensor) -> None:
        self._marked = True
        t._tapes = (t._tapes or EMPTY) | {self._id}
        self._watched[id(t)] = t

    def watched_variables(self) -> tuple:
        return tuple(t for t in self._watched.values() if isinstance(t, Variable))

    @contextlib.contextmanager
    def stop_recording(self):
        """Operations inside are not recorded by this tape."""
        if not self._recording:
            raise ValueError("stop_recording() is only valid while the tape is recording")
        self._pop()
        try:
            yield
        finally:
            self._push()

    def reset(self) -> None:
        """Forget everything recorded so far; keep recording if inside the ``with`` block."""
        was = self._recording
        self._pop()
        self._unmark()
        graph.release_graph(self._id, self._nodes)
        self._watched = {}
        self._id = graph.new_graph_id()
        self._used = False
        if was:
            self._push()

    # -- gradients ----------------------------------------------------------------------------------
    def _source_ok(self, s, targets=()) -> bool:
        if id(s) in self._watched:
            return True
        n = s._node
        if n is not None and graph.keeps(n, self._id):
            return True
        # a trainable Variable asked for as its own target: d v / d v = 1, as TensorFlow
        return s._is_var and s.trainable and self._autowatch and any(s is t for t in targets)

    def _check_usable(self):
        if self._used and not self._persistent:
            raise RuntimeError(
                "GradientTape.gradient can only be called once on non-persistent tapes; "
                "create the tape with GradientTape(persistent=True) to ask for several gradients"
            )

    def _run(self, targets, seeds, sources, retain):
        srcs = [s for s in sources if isinstance(s, Tensor) and self._source_ok(s, targets)]
        st = STATE
        if st.recording or not st.enabled:
            got = graph.walk(targets, seeds, srcs, self._id, retain, self._nodes)
        else:  # no tape records the backward pass: build no graph while it runs
            st.enabled = False
            try:
                got = graph.walk(targets, seeds, srcs, self._id, retain, self._nodes)
            finally:
                st.enabled = True
        return [got.get(id(s)) if isinstance(s, Tensor) else None for s in sources]

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(sum of targets)/d(sources), in the structure of ``sources``.

        A source the target does not depend on, or that this tape neither watched nor computed,
        gets ``None`` (zeros with ``unconnected_gradients='zero'``). ``output_gradients`` weights
        each target (a vector-Jacobian product); without it a non-scalar target is summed.
        """
        self._check_usable()
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(
                f"unconnected_gradients must be 'none' or 'zero', got {unconnected_gradients!r}"
            )
        # None is a leaf here (an empty subtree elsewhere): a loss function without `return` gives it
        targets, tdef = tree.flat(target, none_is_leaf=True)
        for t in targets:
            if not isinstance(t, (Tensor, int, float, np.ndarray, np.generic)) or isinstance(t, complex):
                raise TypeError(
                    f"GradientTape.gradient: the target is {'None' if t is None else type(t).__name__}, "
                    "not a Tensor" + (" (does the loss function return its value?)" if t is None else "")
                )
        src_leaves, rebuild = flatten(sources)
        seeds = _seeds(targets, output_gradients, tdef)
        pairs = [(t, s) for t, s in zip(targets, seeds) if isinstance(t, Tensor)]
        grads = self._run([p[0] for p in pairs], [p[1] for p in pairs], src_leaves, self._persistent)
        if unconnected_gradients == "zero":
            from .ops.creation import zeros_like

            grads = [zeros_like(s) if g is None and isinstance(s, Tensor) else g for g, s in zip(grads, src_leaves)]
        self._finish()
        return rebuild(grads)

    def _finish(self):
        if not self._persistent:
            self._used = True
            self._unmark()
            graph.release_graph(self._id, self._nodes)  # results keep their values only
            self._watched = {k: v for k, v in self._watched.items() if v._is_var}  # still listed, as TF

    def jacobian(self, target, sources, unconnected_gradients="none"):
        """J[i..., j...] = d target[i...] / d source[j...], for each source in ``sources``."""
        self._check_usable()
        src_leaves, rebuild = flatten(sources)
        rows = _jacobian_rows(self, target, src_leaves)
        out = [_stack_rows(r, target.shape, s, unconnected_gradients) for r, s in zip(rows, src_leaves)]
        self._finish()
        return rebuild(out)

    def batch_jacobian(self, target, source, unconnected_gradients="none"):
        """J[b, i..., j...] = d target[b, i...] / d source[b, j...], assuming rows are independent."""
        self._check_usable()
        from .ops.creation import zeros, zeros_like
        from .ops.shape import reshape, stack

        if target.shape[:1] != source.shape[:1]:
            raise ValueError(
                f"batch_jacobian: target shape {target.shape} and source shape {source.shape} "
                "must share the batch (first) dimension"
            )
        b = target.shape[0]
        inner = target.shape[1:]
        n = 1
        for k in inner:
            n *= k
        rows = []
        for j in range(n):
            seed = zeros((b, n), dtype=target.dtype, device=target.device).data
            seed[:, j] = 1
            g = self._run([target], [Tensor._make(seed.reshape(target.shape))], [source], True)[0]
            if g is None:
                g = zeros_like(source) if unconnected_gradients == "zero" else None
            rows.append(g)
        self._finish()
        if any(r is None for r in rows):
            return None
        j = stack(rows, axis=1)  # (b, n, source...)
        return reshape(j, (b, *inner, *source.shape[1:]))


def _ones(t):
    d = t.data
    if d.__class__ is np.ndarray or isinstance(d, np.generic):  # in C (np.ones is a Python function)
        a = np.empty(d.shape, dtype=d.dtype)
        a.fill(1)
        return Tensor._make(a)
    xp = backend.get_array_module(d)
    return Tensor._make(xp.ones(d.shape, dtype=d.dtype))


def _seeds(targets, output_gradients, tdef):
    if output_gradients is None:
        return [_ones(t) if isinstance(t, Tensor) else None for t in targets]
    og = output_gradients
    if tdef is tree.LEAF and type(og) in (list, tuple) and len(og) == 1:
        og = og[0]  # one target and [its gradient], as TensorFlow accepts
    og = tree.flat_like(tdef, og, "output_gradients")
    out = []
    for t, g in zip(targets, og):
        if g is None:
            out.append(_ones(t))
            continue
        g = g if isinstance(g, Tensor) else Tensor(g, dtype=t.dtype, device=t.device)
        if g.shape != t.shape:
            raise ValueError(f"output_gradients: shape {g.shape} does not match the target's shape {t.shape}")
        out.append(g)
    return out


def _jacobian_rows(tape, target, sources):
    from .ops.creation import zeros

    rows = [[] for _ in sources]
    for i in range(target.size):
        seed = zeros((target.size,), dtype=target.dtype, device=target.device).data
        seed[i] = 1
        gs = tape._run([target], [Tensor._make(seed.reshape(target.shape))], sources, True)
        for r, g in zip(rows, gs):
            r.append(g)
    return rows


def _stack_rows(rows, tshape, source, unconnected):
    from .ops.creation import zeros, zeros_like
    from .ops.shape import reshape, stack

    if all(r is None for r in rows):
        if unconnected == "zero":
            return zeros(tuple(tshape) + tuple(source.shape), dtype=source.dtype, device=source.device)
        return None
    rows = [zeros_like(source) if r is None else r for r in rows]
    if not rows:
        return zeros(tuple(tshape) + tuple(source.shape), dtype=source.dtype, device=source.device)
    return reshape(stack(rows, axis=0), tuple(tshape) + tuple(source.shape))
