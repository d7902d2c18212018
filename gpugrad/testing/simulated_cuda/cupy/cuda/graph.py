"""Simulated ``cupy.cuda.graph``: a captured graph replays the work recorded during capture."""

from __future__ import annotations

from ... import _device as _D


class Graph:
    """``launch(stream=None)`` runs every recorded kernel and copy, in order, on the arrays captured
    (their addresses are fixed for the graph's life; values are read afresh at each launch)."""

    def __init__(self, nodes: list) -> None:
        self._nodes = list(nodes)

    def upload(self, stream=None) -> None:
        pass

    def launch(self, stream=None) -> None:
        cap = _D.capturing()
        if cap is not None:  # a child graph of the one being captured
            cap.record("graph", lambda: self.launch(), 0, 0)
            return
        for name, fn, read, written in self._nodes:
            fn()
            _D.count_launch(name, read, written, in_graph=True)
        _D.count("graph_launches")
