"""Simulated streams and events. Work runs when it is queued, so a stream orders nothing; what a
stream does that matters here is capture (``begin_capture``/``end_capture``, see :mod:`.graph`)."""

from __future__ import annotations

import itertools
import time

from ... import _device as _D
from .graph import Graph

_ptrs = itertools.count(0x5000)


class Stream:
    """``Stream(null=False, non_blocking=False, priority=0)``; ``with stream:`` makes it current."""

    null: Stream

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False, priority: int = 0) -> None:
        self.ptr = 0 if null else next(_ptrs)
        self.device_id = _D.state.device
        self.non_blocking = non_blocking
        self.priority = priority
        self._capture: _D.Capture | None = None

    def __repr__(self) -> str:
        return f"<Stream {self.ptr:#x} (device {self.device_id})>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self) -> int:
        return hash(("cuda-stream", self.ptr))

    def __enter__(self) -> Stream:
        _D.state.streams.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _D.state.streams.pop()

    def use(self) -> Stream:
        _D.state.streams[:] = [self]
        return self

    @property
    def done(self) -> bool:
        return True

    def synchronize(self) -> None:
        _D.synchronize("cudaStreamSynchronize")

    def record(self, event: Event | None = None) -> Event:
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event: Event) -> None:
        pass

    def add_callback(self, callback, arg) -> None:
        _D.refuse_in_capture("a stream callback")
        callback(self, 0, arg)

    def is_capturing(self) -> bool:
        return self._capture is not None

    def begin_capture(self, mode=None) -> None:
        """Start recording the work queued on this stream into a graph (nothing runs until it is
        launched). The null stream cannot capture."""
        if self.ptr == 0:
            raise _D.runtime_error(_D.ERR_CAPTURE_UNSUPPORTED, "the null stream cannot capture")
        if self._capture is not None:
            raise _D.runtime_error(_D.ERR_ILLEGAL_STATE, "the stream is already capturing")
        self._capture = _D.Capture(self)
        _D._captures.append(self._capture)

    def end_capture(self) -> Graph:
        cap = self._capture
        if cap is None:
            raise _D.CUDARuntimeError(_D.ERR_CAPTURE_UNMATCHED)
        self._capture = None
        _D._captures.remove(cap)
        if cap.invalid:
            raise _D.runtime_error(_D.ERR_CAPTURE_INVALIDATED, f"invalidated by {cap.invalid}")
        return Graph(cap.nodes)


Stream.null = Stream(null=True)


class ExternalStream(Stream):
    def __init__(self, ptr: int, device_id: int = -1) -> None:
        super().__init__()
        self.ptr = ptr


def get_current_stream(device_id: int | None = None) -> Stream:
    return _D.state.streams[-1] if _D.state.streams else Stream.null


class Event:
    """Times host-side: the simulated device finishes work when it is queued."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> None:
        self.disable_timing = disable_timing
        self._t: float | None = None

    def record(self, stream: Stream | None = None) -> None:
        self._t = time.perf_counter()

    @property
    def done(self) -> bool:
        return True

    def synchronize(self) -> None:
        _D.synchronize("cudaEventSynchronize")


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events."""
    if start_event._t is None or end_event._t is None or start_event.disable_timing:
        raise _D.CUDARuntimeError(_D.ERR_INVALID_HANDLE)
    return (end_event._t - start_event._t) * 1000.0
