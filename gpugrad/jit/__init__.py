"""Compiled steps: ``gg.jit`` records a whole step once and replays it with no per-op Python.

The first call for a new signature (the shapes, dtypes and devices of the array arguments and of
the Variables the function reads; the values of static arguments and of plain Python arguments)
runs the function eagerly while every array is a traced proxy (:mod:`gpugrad.jit.trace`), so that
each array-level call — the forward ops, the backward pass in any spelling, Variable assigns and
optimizer updates — is recorded into a flat program over numbered buffers. The program is then
simplified (calls on constants folded, calls nothing needs dropped), its buffers are planned
(intermediates written with ``out=`` into buffers reused within and across calls, by liveness)
and it is turned into one straight-line Python function of array calls. Later calls with the same
signature run that function: no Tensor or Node objects, no graph walk, no per-op dispatch.

Semantics, as in ``jax.jit`` and ``tf.function``:

- Python side effects (prints, appends, counters) run at trace time only. Optimizers keep their
  step count and learning rate on the host and re-read them at every replay (``backend.host_value``).
- Reading a traced value into Python (``float(t)``, ``t.item()``, ``bool(t)``, ``if t > 0:``,
  ``t.numpy()``) raises :class:`TracingError`; make the input a static argument or compute the
  value outside.
- Arguments are pytrees (lists, tuples, dicts, namedtuples and every other container optree
  knows, such as ``OrderedDict``) of arrays, Tensors, Variables and other values. Arrays and
  Tensors are inputs: a new value is read at each call, a new shape, dtype or device traces again.
  Anything else (a Python number, a string, a model) selects the program by value (a new value
  traces again) and must be hashable; an unhashable one raises ``TypeError`` naming it. One Tensor
  passed twice is one input, as eager code sees it.
- Variables are state: each call reads their current arrays (an ``assign`` made between calls is
  seen) and stores the new ones. Returned tensors are new arrays that later calls never overwrite.
- Variables the first call creates (a layer built on first use, an optimizer's slots) are state of
  that same trace; one made and dropped inside the call is made afresh at each call (the call runs
  eagerly and the next one traces again).
- ``.grad``: ``backward()`` inside the step writes ``.grad`` of ``requires_grad`` Tensor arguments,
  Variables and ``requires_grad`` Tensors the step reaches by closure (PyTorch-style parameters,
  whose optimizer updates are state too) at every call, adding to a grad found there as eager
  code does.
- Random draws (``gg.random``, ``Dropout``) draw at every call from the generator that eager code
  would use then: a ``seed=`` gives the same numbers each call, ``gg.random.seed`` between calls
  restarts the sequence.
- Returned tensors keep ``requires_grad`` where eager code's would, but no graph: differentiating
  one raises, saying why (call ``backward()`` inside the step). Called while a GradientTape
  records, a compiled function runs eagerly so that the tape sees it.
- Not thread-safe: one compiled function must not run in two threads at once.

Elementwise chains are fused (:mod:`.fusion`): one C loop on the CPU (:mod:`.cpu`), one CUDA kernel
on a GPU (:mod:`.gpu`); ``GPUGRAD_FUSION=0`` turns that off.

On CuPy arrays the replay is captured once as a CUDA graph (every buffer allocated before the
capture) and each later call is the copies of new inputs, one copy of the step's host numbers
(learning rates, step counts, the random generator's counter: :class:`.program.DeviceScalars`)
and one graph launch (``cuda_graph=False`` opts out; a failed capture falls back to plain replay
with a warning). Inputs passed again as the very same device arrays are not copied: a graph
captured against them reads them where they are (:mod:`.cuda_graph`).
"""

from .compiled import Compiled, jit
from .trace import TracingError

__all__ = ["jit", "TracingError", "Compiled"]
