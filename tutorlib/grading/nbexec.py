"""Execute a notebook with nbclient without the lost-reply stall: :class:`NudgingClient`.

Running the lessons headless (tests, ``benchmarks/course.py``) occasionally stalled after a widget cell:
the kernel had finished the cell and was idle, yet its ``execute_reply`` never reached the client,
which then waited out the whole cell timeout. Any new message to the kernel released the reply at
once (seen with ipykernel 7.4, pyzmq 27.3; a stall was also seen with ipykernel 6.31). This client
sends a harmless ``kernel_info_request`` every ``nudge_s`` seconds while a cell runs; nbclient
ignores replies to requests it did not make, so a normal run is unchanged.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(0.5); print(6 * 7)")])
>>> client = NudgingClient(nb, timeout=60, kernel_name="python3", nudge_s=0.1)
>>> _ = client.execute()
>>> nb.cells[0].outputs[0]["text"], client.nudges > 0
('42\\n', True)
"""

from __future__ import annotations

import asyncio
from typing import Any

from nbclient import NotebookClient

__all__ = ["NUDGE_S", "NudgingClient"]

NUDGE_S = 15.0  # seconds between nudges while a cell runs (also used by the grader)


class NudgingClient(NotebookClient):
    """An nbclient ``NotebookClient`` that nudges the kernel every ``nudge_s`` seconds while a cell runs.

    ``nudges`` counts the ``kernel_info_request`` messages sent. All other arguments are nbclient's.
    """

    def __init__(self, nb: Any, km: Any = None, nudge_s: float = NUDGE_S, **kw: Any) -> None:
        if nudge_s <= 0:
            raise ValueError(f"nudge_s must be positive, got {nudge_s}")
        super().__init__(nb, km=km, **kw)
        self.nudge_s = nudge_s
        self.nudges = 0

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
