"""tutorlib.train: the loop trains, resumes exactly after a kill, stops on NaN, matches DDP, rejects bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tutorlib.data import load_digits
from tutorlib.models import MLP
from tutorlib.train import (Callback, CheckpointError, EarlyStopping, NonFiniteLossError, Trainer, accuracy,
                            confusion_matrix, f1_score, latest_checkpoint, load_checkpoint, save_checkpoint)

ROOT = Path(__file__).resolve().parents[1]


def quiet(**kw):
    return dict(progress=False, log=False, **kw)


def test_loss_falls_and_accuracy_rises_on_digits():
    torch.manual_seed(0)
    t = Trainer(MLP(64, [64], 10), lr=1e-2, batch_size=32, **quiet())
    h = t.fit(load_digits("train", limit=400), load_digits("val", limit=200), epochs=4)
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h["val_accuracy"][-1] > 0.8
    logits, targets = t.predict(load_digits("val", limit=200))
    assert logits.shape == (200, 10) and accuracy(logits, targets) == pytest.approx(h["val_accuracy"][-1])


def test_grad_accumulation_equals_large_batch():
    ds = load_digits("train", limit=128)

    def run(**kw):
        torch.manual_seed(0)
        m = MLP(64, [32], 10)
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), shuffle=False, **quiet(**kw)).fit(ds, epochs=1)
        return m

    big, accum = run(batch_size=32), run(batch_size=8, grad_accum=4)
    for a, b in zip(big.parameters(), accum.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_grad_accumulation_with_ragged_last_group_equals_large_batch():
    ds = load_digits("train", limit=100)  # 100 = 3 groups of 32 + a ragged group of 4

    def run(**kw):
        torch.manual_seed(0)
        m = MLP(64, [32], 10)
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), shuffle=False, **quiet(**kw)).fit(ds, epochs=1)
        return m

    big, accum = run(batch_size=32), run(batch_size=8, grad_accum=4)
    for a, b in zip(big.parameters(), accum.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_scheduler_factory_steps_per_optimizer_step():
    m = MLP(64, [16], 10)
    sched = lambda opt, total: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total)  # noqa: E731
    t = Trainer(m, lr=0.1, scheduler=sched, batch_size=32, **quiet())
    h = t.fit(load_digits("train", limit=128), epochs=2)
    lrs = [s["lr"] for s in h.steps]
    assert len(lrs) == 8 and lrs[0] > lrs[-1] and t.current_lr() == pytest.approx(0.0)


def test_bf16_autocast_on_cpu_trains():
    torch.manual_seed(0)
    t = Trainer(MLP(64, [64], 10), lr=3e-3, precision="bf16", **quiet())
    h = t.fit(load_digits("train", limit=256), epochs=3)
    assert h["train_loss"][-1] < h["train_loss"][0]
    with pytest.raises(ValueError, match="bf16"):
        Trainer(MLP(), precision="fp16", device="cpu", **quiet())


def test_early_stopping_restores_best_weights():
    class Scripted(Callback):  # force a val_loss curve: 3, 1, 2, 2, 2 …
        values = [3.0, 1.0, 2.0, 2.0, 2.0, 2.0]

    torch.manual_seed(0)
    model = MLP(64, [16], 10)
    es = EarlyStopping("val_loss", patience=2)
    snapshots = []

    class Patch(Callback):
        def on_epoch_end(self, trainer, logs):
            logs["val_loss"] = Scripted.values[int(logs["epoch"])]
            snapshots.append({k: v.clone() for k, v in trainer.unwrapped_model.state_dict().items()})

    t = Trainer(model, lr=1e-2, callbacks=[Patch(), es], **quiet())
    h = t.fit(load_digits("train", limit=64), load_digits("val", limit=32), epochs=6)
    assert len(h.epochs) == 4 and es.best_epoch == 1 and es.stopped_epoch == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_nan_loss_stops_with_step_and_lr_and_keeps_last_good_checkpoint(tmp_path):
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.lin(x.flatten(1))
            return out * float("nan") if self.calls == 6 else out

    t = Trainer(Exploding(), lr=0.05, batch_size=32, checkpoint_dir=tmp_path, checkpoint_every=2, **quiet())
    with pytest.raises(NonFiniteLossError) as err:
        t.fit(load_digits("train", limit=320), epochs=1)
    msg = str(err.value)
    assert "step 6" in msg and "learning rate 0.05" in msg and "last good checkpoint" in msg
    last = latest_checkpoint(tmp_path)
    assert last is not None and last.name == "step-00000004"
    weights = load_file(str(last / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_bad_inputs_get_clear_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer("not a model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        Trainer(MLP(), precision="fp8", **quiet())
    with pytest.raises(ValueError, match="empty"):
        Trainer(MLP(), **quiet()).fit(load_digits("train", limit=10).__class__(torch.zeros(0, 64), torch.zeros(0).long()))
    wrong_shape = torch.utils.data.TensorDataset(torch.zeros(8, 32), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        Trainer(MLP(), **quiet()).fit(wrong_shape)
    float_labels = torch.utils.data.TensorDataset(torch.zeros(8, 64), torch.zeros(8))
    with pytest.raises(TypeError, match="y.long"):
        Trainer(MLP(), **quiet()).fit(float_labels)
    no_labels = torch.utils.data.TensorDataset(torch.zeros(8, 64))
    with pytest.raises(ValueError, match="step_fn"):
        Trainer(MLP(), **quiet()).fit(no_labels)
    frozen = MLP()
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        Trainer(frozen, **quiet())
    with pytest.raises(ValueError, match="checkpoint_dir"):
        Trainer(MLP(), **quiet()).fit(load_digits("train", limit=8), resume=True)


def test_step_fn_for_custom_objectives():
    # A reconstruction objective with no labels: the pluggable step is how GAN/VAE/contrastive lessons train.
    ae = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 64))

    def step(trainer, batch):
        x = batch[0]
        return {"loss": nn.functional.mse_loss(trainer.model(x), x.flatten(1))}

    h = Trainer(ae, lr=1e-2, step_fn=step, **quiet()).fit(load_digits("train", limit=256), epochs=3)
    assert h["train_loss"][-1] < h["train_loss"][0]


def test_evaluate_accepts_logits_whose_width_changes_between_batches():
    # An in-batch contrastive step (CLIP) scores each item against the B items of its batch, so the
    # last, smaller batch has narrower logits; evaluate must still compute accuracy and F1 over all items.
    x = torch.eye(10)

    def step(trainer, batch):
        (xb,) = batch
        logits = xb @ xb.T                    # (B, B): item i matches item i
        logits[0, -1] = 2.0                   # ...except the first item of every batch, which is wrong
        return {"loss": logits.sum() * 0, "logits": logits, "targets": torch.arange(len(xb))}

    t = Trainer(nn.Linear(1, 1), step_fn=step, batch_size=4, metrics=("accuracy", "f1"), **quiet())
    r = t.evaluate(torch.utils.data.TensorDataset(x))   # batches of 4, 4 and 2 items
    assert r["val_accuracy"] == pytest.approx(7 / 10)
    assert 0 < r["val_f1"] < 1


def test_a_callback_stops_training_mid_epoch_after_that_step():
    class StopAt(Callback):
        def on_step_end(self, trainer, logs):
            if logs["step"] == 3:
                trainer.should_stop = True

    t = Trainer(MLP(64, [16], 10), lr=1e-2, batch_size=16, callbacks=[StopAt()], **quiet())
    h = t.fit(load_digits("train", limit=256), epochs=3)  # 16 steps per epoch
    assert t.global_step == 3 and [s["step"] for s in h.steps] == [1, 2, 3]
    assert h.epochs == []  # the stopped epoch is not reported as a finished one


def test_checkpoints_and_the_nan_guard_are_callbacks(tmp_path):
    from tutorlib.train import Checkpointing, NonFiniteGuard

    t = Trainer(MLP(64, [16], 10), lr=1e-2, batch_size=64, checkpoint_dir=tmp_path, checkpoint_every=2, **quiet())
    assert [type(c) for c in t.callbacks] == [NonFiniteGuard, Checkpointing]
    t.fit(load_digits("train", limit=256), epochs=1)  # 4 steps: one mid-epoch checkpoint, one at the epoch's end
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000004"]
    assert not any(isinstance(c, NonFiniteGuard) for c in Trainer(nn.Linear(2, 2), nan_guard=False, **quiet()).callbacks)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        Trainer(nn.Linear(2, 2), checkpoint_every=5, **quiet())


def test_predict_returns_class_ids_when_asked():
    t = Trainer(MLP(64, [16], 10), **quiet())
    data = load_digits("val", limit=50)
    logits, targets = t.predict(data)
    ids, same_targets = t.predict(data, class_ids=True)
    assert ids.dtype == torch.long and torch.equal(ids, logits.argmax(1)) and torch.equal(targets, same_targets)


def test_checkpoint_corrupt_and_mismatch(tmp_path):
    m = nn.Linear(3, 2)
    path = save_checkpoint(tmp_path, m, step=1)
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, m)
    path2 = save_checkpoint(tmp_path / "b", m, step=1)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path2, nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty-dir-does-not-exist-yet" if (tmp_path / "x").mkdir() else tmp_path / "x", m)


def test_metrics_match_hand_computation():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    p = torch.tensor([0, 1, 1, 1, 2, 0])
    assert accuracy(p, y) == pytest.approx(4 / 6)
    assert confusion_matrix(p, y, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # per class F1: c0 p=.5 r=.5 -> .5; c1 p=2/3 r=1 -> .8; c2 p=1 r=.5 -> 2/3
    assert f1_score(p, y) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="same length"):
        accuracy(p, y[:3])


RESUME_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Trainer, Callback

    out, resume, die_at = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])

    class Die(Callback):
        def on_step_end(self, trainer, logs):
            if logs["step"] == die_at:
                os._exit(9)   # a hard kill: no cleanup, no exception handlers

    seed_everything(0)
    model = MLP(64, [64], 10, dropout=0.2)   # dropout: the RNG state must be restored too
    t = Trainer(model, lr=3e-3, batch_size=32, checkpoint_dir=out, checkpoint_every=5,
                callbacks=[Die()] if die_at else [], progress=False, log=False)
    t.fit(load_digits("train", limit=320), epochs=3, resume=resume)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "final.safetensors"))
""")


def _run_resume_script(tmp_path: Path, out: Path, resume: bool, die_at: int) -> int:
    script = tmp_path / "resume_script.py"
    script.write_text(RESUME_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(script), str(out), "1" if resume else "0", str(die_at)],
                          env=env, timeout=300).returncode


def test_killed_run_resumes_to_bitwise_identical_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run_resume_script(tmp_path, straight, resume=False, die_at=0) == 0
    # 10 steps per epoch; die at step 17 (after the step-15 checkpoint), mid epoch 2.
    assert _run_resume_script(tmp_path, killed, resume=False, die_at=17) == 9
    assert latest_checkpoint(killed).name == "step-00000015"
    assert _run_resume_script(tmp_path, killed, resume=True, die_at=0) == 0
    a = load_file(str(straight / "final.safetensors"))
    b = load_file(str(killed / "final.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


DDP_SCRIPT = textwrap.dedent("""
    import atexit, os, sys, torch
    from tutorlib.data import load_digits

    def report_at_exit():  # registered first, so it runs after tutorlib's own exit handler (LIFO)
        model = t.model.__class__.__name__
        with open(sys.argv[1] + ".exit" + os.environ.get("RANK", "0"), "w") as f:
            f.write(f"{torch.distributed.is_initialized()} {model}")
    atexit.register(report_at_exit)

    from tutorlib.models import MLP
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Trainer
    accum = int(sys.argv[2]) if len(sys.argv) > 2 else 1   # micro-batches per step; always 32 examples a step
    seed_everything(0)
    model = MLP(64, [32], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    t = Trainer(model, opt, batch_size=32 // accum, grad_accum=accum, progress=False, log=False, device="cpu")
    syncs = 0
    if isinstance(t.model, torch.nn.parallel.DistributedDataParallel):
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
        def counting_hook(state, bucket):  # DDP calls this once per gradient bucket it all-reduces
            global syncs
            syncs += 1
            return allreduce_hook(state, bucket)
        t.model.register_comm_hook(None, counting_hook)
    t.fit(load_digits("train", limit=256), epochs=2)
    with open(sys.argv[1] + ".syncs" + os.environ.get("RANK", "0"), "w") as f:
        f.write(f"{syncs} {t.global_step}")
    if t.is_main:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in t.unwrapped_model.state_dict().items()}, sys.argv[1])
""")


@pytest.mark.parametrize("accum", [1, 2])
def test_ddp_two_processes_match_single_process(tmp_path, accum):
    script = tmp_path / "ddp_script.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    single, multi = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    subprocess.run([sys.executable, str(script), str(single), str(accum)], env=env, check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(script), str(multi), str(accum)], env=env, check=True, timeout=300)  # --standalone: a free port
    a, b = load_file(str(single)), load_file(str(multi))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # One all-reduce per optimizer step (the tiny MLP's gradients fit in one bucket), not one per micro-batch:
    # with accumulation, DDP skips the sync on all but the group's last backward pass (no_sync).
    for rank in (0, 1):
        syncs, steps = map(int, (tmp_path / f"ddp.safetensors.syncs{rank}").read_text().split())
        assert steps == 16 and syncs == steps, f"rank {rank}: {syncs} all-reduces for {steps} steps"
    # The script never calls destroy_process_group(): tutorlib's exit handler unwrapped the model and
    # destroyed the group on both ranks before the interpreter's teardown (where gloo can abort a rank).
    for rank in (0, 1):
        assert (tmp_path / f"ddp.safetensors.exit{rank}").read_text() == "False MLP"
    assert (tmp_path / "single.safetensors.exit0").read_text() == "False MLP"


def test_shutdown_distributed_unwraps_and_destroys_the_group():
    """In-process, with a one-rank gloo group: shutdown puts the bare model back and ends the group."""
    import socket

    import torch.distributed as dist

    from tutorlib.train.distributed import shutdown_distributed, wrap_ddp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)

    class Holder:
        pass

    holder, bare = Holder(), torch.nn.Linear(3, 2)
    holder.model = wrap_ddp(holder, bare, torch.device("cpu"))
    assert isinstance(holder.model, torch.nn.parallel.DistributedDataParallel)
    shutdown_distributed(drain_s=0.01)
    assert holder.model is bare and not dist.is_initialized()
    shutdown_distributed()  # twice is fine
