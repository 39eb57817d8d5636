"""Data-parallel training with the course Trainer: the same script on 1 process or under ``torchrun``.

Run it as ``python -m tutorlib.efficient.ddp_demo`` (one process) or as
``torchrun --nproc_per_node=2 -m tutorlib.efficient.ddp_demo`` (two processes; gloo on CPU, nccl on
GPUs). Nothing in the training code changes: under ``torchrun`` the
:class:`~tutorlib.train.Trainer` reads ``RANK``/``WORLD_SIZE``, joins the process group, wraps the
model in ``DistributedDataParallel`` (which all-reduces — averages — the gradients during
``backward``), gives every rank its slice of each global batch, and lets only rank 0 log and save.
With the same global batch, the final weights equal the single-process run's.

:func:`launch` starts the script under ``python -m torch.distributed.run`` from Python (a notebook
or a test) and returns rank 0's JSON summary.

>>> result = launch(nproc=1, n=64, batch_size=32, epochs=1)   # doctest: +SKIP
>>> result["world_size"]                                       # doctest: +SKIP
1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["CountingDataset", "main", "launch", "build_parser"]


class CountingDataset(Dataset):
    """Wrap a dataset and count how many items this process loaded (shows how the sampler shards the data).

    >>> ds = CountingDataset(torch.utils.data.TensorDataset(torch.zeros(4, 1))); _ = ds[0]; ds.loaded
    1
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.loaded = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        self.loaded += 1
        return self.base[i]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the demo.

    >>> build_parser().parse_args([]).batch_size
    32
    """
    p = argparse.ArgumentParser(prog="python -m tutorlib.efficient.ddp_demo",
                                description="Train an MLP on the digits with the course Trainer; run under torchrun for DDP.")
    p.add_argument("--examples", type=int, default=512, help="training examples (default 512)")
    p.add_argument("--batch-size", type=int, default=32, help="GLOBAL batch size, split over the processes (default 32)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: best available; each rank uses cuda:LOCAL_RANK)")
    p.add_argument("--out", default=None, help="save rank 0's final weights here (.safetensors)")
    p.add_argument("--json", default=None, help="write rank 0's summary here (JSON)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train, print what each rank did, check the replicas agree, and (rank 0) save weights and a JSON summary."""
    import torch.distributed as dist

    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Trainer, shutdown_distributed

    args = build_parser().parse_args(argv)
    seed_everything(args.seed)
    # Every rank builds the same model from the same seed; DDP also broadcasts rank 0's weights.
    model = MLP(64, [args.hidden], 10)
    train = CountingDataset(load_digits("train", limit=args.examples))
    trainer = Trainer(model, lr=args.lr, batch_size=args.batch_size, device=args.device, seed=args.seed,
                      progress=False, log=False)
    rank, world = trainer.dist.rank, trainer.dist.world_size
    backend = dist.get_backend() if dist.is_initialized() else "none (single process)"
    t0 = time.perf_counter()
    history = trainer.fit(train, epochs=args.epochs)
    seconds = time.perf_counter() - t0
    flat = torch.cat([p.detach().flatten().cpu() for p in trainer.unwrapped_model.parameters()])
    identical = True
    if dist.is_initialized():
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat.to(trainer.device) if backend == "nccl" else flat)
        identical = all(torch.equal(g.cpu(), flat) for g in gathered)
    print(f"rank {rank}/{world}: device {trainer.device}, backend {backend}, loaded {train.loaded} of "
          f"{len(train) * args.epochs} examples ({args.batch_size // world} of each global batch of {args.batch_size}), "
          f"{trainer.global_step} optimizer steps", flush=True)
    if trainer.is_main:
        summary = {
            "world_size": world, "backend": backend, "device": str(trainer.device), "global_batch": args.batch_size,
            "per_rank_batch": args.batch_size // world, "steps": trainer.global_step, "epochs": args.epochs,
            "examples_loaded_by_rank0": train.loaded, "train_loss": history["train_loss"], "seconds": seconds,
            "replicas_identical": identical, "checksum": float(flat.double().sum()),
        }
        print(f"rank 0: train loss per epoch {[round(v, 4) for v in history['train_loss']]}, "
              f"replicas identical after training: {identical}, {seconds:.1f} s", flush=True)
        if args.out:
            from safetensors.torch import save_file

            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in trainer.unwrapped_model.state_dict().items()}, args.out)
            summary["weights"] = str(args.out)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1))
    if dist.is_initialized():
        dist.barrier()           # every rank has finished and rank 0 has written its files
        shutdown_distributed()   # the Trainer would also do this at exit
    return 0


def launch(nproc: int = 2, *, n: int = 512, batch_size: int = 32, epochs: int = 2, lr: float = 3e-3,
           device: str | None = "cpu", out: str | Path | None = None, timeout: float = 300,
           extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run the demo under ``python -m torch.distributed.run --standalone --nproc_per_node=nproc`` and return rank 0's summary.

    The summary has ``world_size``, ``backend``, ``steps``, ``train_loss`` (per epoch), ``seconds``,
    ``replicas_identical``, ``weights`` (if ``out`` is given) and ``log`` (everything the ranks printed).
    Raises ``RuntimeError`` with the log if the run fails.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    if batch_size % nproc:
        raise ValueError(f"the global batch size {batch_size} must be divisible by nproc={nproc}")
    with tempfile.TemporaryDirectory(prefix="ddp-demo-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "tutorlib.efficient.ddp_demo", "--examples", str(n), "--batch-size", str(batch_size),
               "--epochs", str(epochs), "--lr", str(lr), "--json", str(summary_path), *extra]
        if device:
            cmd += ["--device", device]
        if out:
            cmd += ["--out", str(out)]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), GLOO_SOCKET_IFNAME="lo")
        env.setdefault("TORCHELASTIC_ERROR_FILE", str(Path(tmp) / "error.json"))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0 or not summary_path.exists():
            raise RuntimeError(f"the distributed run failed (exit code {proc.returncode}):\n{log[-4000:]}")
        summary = json.loads(summary_path.read_text())
    summary["log"] = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("rank"))
    summary["command"] = " ".join(["torchrun", "--standalone", f"--nproc_per_node={nproc}", *cmd[5:]])
    return summary


if __name__ == "__main__":
    code = main()
    if "LOCAL_RANK" in os.environ:
        # Under torchrun, also skip the interpreter's finalisation: everything is written and the group is
        # shut down, and a gloo thread that still frees work there aborts the rank (see shutdown_distributed).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
