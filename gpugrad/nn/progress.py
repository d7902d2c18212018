"""The progress line of ``fit(verbose=1)``: a tqdm bar sized so that the running loss and every
metric stay visible in the terminal's width (80 columns when it cannot be told), then one plain
line per epoch with everything (validation entries included), which the terminal wraps if long.

Without tqdm the same per-epoch line is printed, without the live bar.
"""

from __future__ import annotations

import shutil
import sys

_MAX_BAR = 30
_MIN_BAR = 5


def columns() -> int:
    """The terminal's width (``COLUMNS`` or the real size; 80 when there is no terminal)."""
    return shutil.get_terminal_size((80, 24)).columns


def bar_format(steps: int, desc: str, text: str, cols: int) -> str:
    """A tqdm ``bar_format`` whose rendered line is at most ``cols`` characters where the metrics
    ``text`` fits at all: the bar shrinks first, then the description goes, then the bar."""
    text = text.replace("{", "{{").replace("}", "}}")
    counter = 2 * len(str(steps)) + 1
    for with_desc in (True, False):
        head = f"{desc} " if with_desc and desc else ""
        room = cols - len(head) - counter - len(" [] ") - len(text) - 1
        if room >= _MIN_BAR:
            return f"{head}{{n_fmt}}/{{total_fmt}} [{{bar:{min(room, _MAX_BAR)}}}] {text}"
    return "{n_fmt}/{total_fmt} " + text


class ProgressBar:
    """One epoch's live bar; :meth:`show` sets the metrics text, :meth:`close` clears the bar."""

    def __init__(self, tqdm_cls, steps: int, desc: str, cols: int | None = None):
        self.steps = steps
        self.desc = desc
        self.cols = cols or columns()
        self._bar = tqdm_cls(
            total=steps,
            file=sys.stdout,
            leave=False,
            ncols=None,  # the format below sizes the line itself; tqdm must not cut it
            dynamic_ncols=False,
            bar_format=bar_format(steps, desc, "", self.cols),
            mininterval=0.1,
        )

    def show(self, text: str) -> None:
        self._bar.bar_format = bar_format(self.steps, self.desc, text, self.cols)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def factory():
    """``make(steps, desc)`` giving a :class:`ProgressBar`, or None where tqdm is not installed."""
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return None

    def make(steps, desc):
        return ProgressBar(tqdm, steps, desc)

    return make
