"""The notebook executor used by the tests and benchmarks/course.py waits in short slices and nudges the kernel
without disturbing a run."""

from __future__ import annotations

import asyncio
import time
from queue import Empty

import nbformat
import pytest

from tutorlib.grading.nbexec import NudgingClient, sliced


def test_nudges_during_a_long_cell_leave_outputs_and_order_intact():
    cells = [nbformat.v4.new_code_cell("import time\nx = 1"),
             nbformat.v4.new_code_cell("for i in range(3):\n    time.sleep(0.3)\n    print(i, flush=True)\nx += 1"),
             nbformat.v4.new_code_cell("print('x =', x)")]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NudgingClient(nb, timeout=60, kernel_name="python3", nudge_s=0.05, poll_s=0.02)
    client.execute()
    assert client.nudges >= 5  # the kernel was poked many times while the second cell slept
    assert "".join(o["text"] for o in nb.cells[1].outputs) == "0\n1\n2\n"
    assert nb.cells[2].outputs[0]["text"] == "x = 2\n"  # every cell ran once, in order
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]


def test_nudge_interval_must_be_positive():
    with pytest.raises(ValueError, match="nudge_s"):
        NudgingClient(nbformat.v4.new_notebook(), nudge_s=0)


def test_nudge_interval_and_poll_slice_must_be_positive_too():
    with pytest.raises(ValueError, match="poll_s"):
        NudgingClient(nbformat.v4.new_notebook(), poll_s=0)
    with pytest.raises(ValueError, match="poll_s"):
        sliced(lambda timeout=None: None, poll_s=-1)


class _LateChannel:
    """A channel whose message becomes readable only at ``ready_at`` (like a reply whose wakeup was missed:
    only a poll that ends after it is there sees it)."""

    def __init__(self, ready_at: float) -> None:
        self.ready_at, self.timeouts = ready_at, []

    async def get_msg(self, timeout=None):
        self.timeouts.append(timeout)
        await asyncio.sleep(timeout)
        if time.monotonic() >= self.ready_at:
            return {"msg_type": "execute_reply"}
        raise Empty


def test_sliced_wait_finds_a_late_message_within_one_slice_not_at_the_timeout():
    channel = _LateChannel(ready_at=time.monotonic() + 0.2)
    start = time.monotonic()
    msg = asyncio.run(sliced(channel.get_msg, poll_s=0.05)(timeout=30))
    assert msg["msg_type"] == "execute_reply"
    assert time.monotonic() - start < 5          # not the 30 s timeout
    assert all(t <= 0.05 for t in channel.timeouts) and len(channel.timeouts) >= 4


def test_sliced_wait_still_times_out_and_waits_forever_when_told():
    channel = _LateChannel(ready_at=float("inf"))
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(sliced(channel.get_msg, poll_s=0.05)(timeout=0.2))
    assert 0.2 <= time.monotonic() - start < 5
    assert channel.timeouts[-1] <= 0.05
    forever = _LateChannel(ready_at=time.monotonic() + 0.15)  # timeout=None: keeps slicing until a message
    assert asyncio.run(sliced(forever.get_msg, poll_s=0.05)(timeout=None))["msg_type"] == "execute_reply"
