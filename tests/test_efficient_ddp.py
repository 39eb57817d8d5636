"""The DDP demo: the same Trainer script under ``torchrun --nproc_per_node=2`` (gloo on CPU) ends with the
weights of a single-process run on the same global batch."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file

from tutorlib.efficient.ddp_demo import CountingDataset, build_parser, launch, main


def test_torchrun_two_processes_equal_one_process(tmp_path):
    t0 = time.perf_counter()
    two = launch(nproc=2, n=128, batch_size=32, epochs=2, out=tmp_path / "two.safetensors", timeout=170)
    assert main(["--examples", "128", "--batch-size", "32", "--epochs", "2", "--device", "cpu",
                 "--out", str(tmp_path / "one.safetensors"), "--json", str(tmp_path / "one.json")]) == 0
    seconds = time.perf_counter() - t0
    one = json.loads((tmp_path / "one.json").read_text())
    assert two["world_size"] == 2 and two["backend"] == "gloo" and one["world_size"] == 1
    assert two["replicas_identical"] is True
    assert two["steps"] == one["steps"] == 8              # 128 / 32 per epoch, 2 epochs
    assert two["examples_loaded_by_rank0"] == 128          # half of 2 × 128: the sampler shards every batch
    assert two["log"].count("rank ") >= 2 and "rank 1/2" in two["log"]
    w1, w2 = load_file(one["weights"]), load_file(two["weights"])
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-6, rtol=1e-5)
    # The logged loss is rank 0's mean over its half of each batch, so it is close to, not equal to, the global one.
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=0.05)
    print(f"DDP test took {seconds:.1f} s")


def test_demo_pieces_and_errors():
    ds = CountingDataset(torch.utils.data.TensorDataset(torch.zeros(5, 1)))
    _ = ds[0], ds[1]
    assert ds.loaded == 2 and len(ds) == 5
    assert build_parser().parse_args(["--examples", "64"]).examples == 64
    with pytest.raises(ValueError, match="divisible by nproc=3"):
        launch(nproc=3, batch_size=32)
    with pytest.raises(ValueError, match="at least 1"):
        launch(nproc=0)
