"""The core measurement helpers: live tensor bytes inside a block."""

import torch

from tutorlib.measure import LiveTensorMemory


def test_views_of_existing_weights_are_not_new_memory():
    w = torch.randn(256, 256)  # a "weight" that exists before the block
    x = torch.randn(8, 256)
    with LiveTensorMemory() as mem:
        wt = w.t()  # a view: no new storage
        y = x @ wt  # a new (8, 256) float32 result
    assert mem.peak_bytes == y.numel() * 4
    assert wt.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()


def test_new_storages_and_frees_are_counted():
    with LiveTensorMemory() as mem:
        a = torch.ones(1024)
        b = a * 2
        c = b.view(32, 32)  # a view of a storage made in the block: counted once
        del a
    assert mem.peak_bytes == 2 * 4096
    assert mem.current_bytes == 4096
    assert c.shape == (32, 32)
