"""Execute a notebook with nbclient without the lost-wakeup stall: :class:`NudgingClient`.

Running the lessons headless (tests, ``benchmarks/course.py``) occasionally stalled after a widget cell:
the kernel had finished the cell and was idle, yet nbclient kept waiting — until the cell timeout, at
which point the cell "finished" normally. The explanation that fits every observation is a missed
wakeup: pyzmq's asyncio poll watches a ZeroMQ socket's file descriptor, which signals *changes*
(edge-triggered); when a wakeup is missed, the reply sits unread in the socket until the poll's timer
fires and pyzmq does one last real poll — and nbclient's timer is the whole cell timeout (seen with ipykernel 7.4, pyzmq 27.3, nbclient 0.11; a
stall was also seen with ipykernel 6.31).

This client therefore waits on the shell and IOPub channels in slices of at most ``poll_s`` seconds
(each slice ends with that real poll, so an unread message is found within ``poll_s``), and also sends a
harmless ``kernel_info_request`` every ``nudge_s`` seconds while a cell runs. nbclient ignores replies
to requests it did not make, so a normal run is unchanged.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(0.5); print(6 * 7)")])
>>> client = NudgingClient(nb, timeout=60, kernel_name="python3", nudge_s=0.1)
>>> _ = client.execute()
>>> nb.cells[0].outputs[0]["text"], client.nudges > 0
('42\\n', True)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path
from queue import Empty
from typing import Any, Awaitable, Callable

from nbclient import NotebookClient

__all__ = ["NUDGE_S", "POLL_S", "NudgingClient", "sliced", "lesson_environment", "execute_lesson"]

ROOT = Path(__file__).resolve().parents[2]

NUDGE_S = 15.0  # seconds between nudges while a cell runs (also used by the grader)
POLL_S = 1.0    # longest single wait on a channel before a real (level-triggered) poll


def sliced(get_msg: Callable[..., Awaitable[dict]], poll_s: float = POLL_S) -> Callable[..., Awaitable[dict]]:
    """Wrap an async ``get_msg(timeout=None)`` so it waits in slices of at most ``poll_s`` seconds.

    Same contract as the original (a message, or ``queue.Empty`` once ``timeout`` has passed; ``None``
    waits forever), but a message whose wakeup was missed is picked up by the next slice's final poll.

    >>> import asyncio
    >>> calls = []
    >>> async def get_msg(timeout=None):
    ...     calls.append(timeout)
    ...     if len(calls) < 3:
    ...         raise Empty
    ...     return {"msg_type": "status"}
    >>> asyncio.run(sliced(get_msg, poll_s=0.01)(timeout=None))["msg_type"], calls
    ('status', [0.01, 0.01, 0.01])
    """
    if poll_s <= 0:
        raise ValueError(f"poll_s must be positive, got {poll_s}")

    async def get_msg_in_slices(timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


class NudgingClient(NotebookClient):
    """An nbclient ``NotebookClient`` that waits on its channels in ``poll_s`` slices and nudges the kernel
    every ``nudge_s`` seconds while a cell runs.

    ``nudges`` counts the ``kernel_info_request`` messages sent. All other arguments are nbclient's.
    """

    def __init__(self, nb: Any, km: Any = None, nudge_s: float = NUDGE_S, poll_s: float = POLL_S, **kw: Any) -> None:
        if nudge_s <= 0 or poll_s <= 0:
            raise ValueError(f"nudge_s and poll_s must be positive, got {nudge_s} and {poll_s}")
        super().__init__(nb, km=km, **kw)
        self.nudge_s, self.poll_s = nudge_s, poll_s
        self.nudges = 0

    async def async_start_new_kernel_client(self) -> Any:
        kc = await super().async_start_new_kernel_client()
        for channel in (kc.shell_channel, kc.iopub_channel):
            channel.get_msg = sliced(channel.get_msg, self.poll_s)
        return kc

    async def _nudge(self) -> None:
        while True:
            await asyncio.sleep(self.nudge_s)
            if self.kc is not None:
                self.kc.kernel_info()  # only sends; the reply is skipped by nbclient's reply loop
                self.nudges += 1

    async def async_execute_cell(self, cell: Any, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> Any:
        nudger = asyncio.ensure_future(self._nudge())
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count=execution_count,
                                                    store_history=store_history)
        finally:
            nudger.cancel()


def lesson_environment(smoke: bool, root: str | os.PathLike[str] = ROOT) -> dict[str, str]:
    """The environment variables a lesson kernel runs with: smoke or full mode, offline, ``root`` importable.

    >>> env = lesson_environment(smoke=True)
    >>> env["TUTORLIB_SMOKE"], env["HF_HUB_OFFLINE"]
    ('1', '1')
    """
    return {
        "TUTORLIB_SMOKE": "1" if smoke else "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TUTORLIB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }


def execute_lesson(nb: Any, *, smoke: bool, timeout: int, cwd: str | os.PathLike[str],
                   extra_env: Mapping[str, str] | None = None) -> NudgingClient:
    """Run every cell of the notebook ``nb`` (in place) in a fresh kernel started in ``cwd``.

    The kernel gets :func:`lesson_environment` plus ``extra_env``; the caller's environment is restored
    afterwards. A cell error raises nbclient's ``CellExecutionError`` naming the cell. Used by the tests,
    ``benchmarks/course.py`` and ``run.sh execute``, so all run lessons the same way.

    >>> import nbformat, tempfile
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; print(os.environ['TUTORLIB_SMOKE'])")])
    >>> _ = execute_lesson(nb, smoke=True, timeout=60, cwd=tempfile.mkdtemp())
    >>> nb.cells[0].outputs[0]["text"]
    '1\\n'
    """
    backup = dict(os.environ)
    os.environ.update(lesson_environment(smoke))
    os.environ.update(extra_env or {})
    try:
        client = NudgingClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
        client.execute()
        return client
    finally:
        os.environ.clear()
        os.environ.update(backup)
