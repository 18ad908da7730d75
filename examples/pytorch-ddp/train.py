"""Distributed data-parallel training on CPUs: a tiny linear regression, one process per task.

Runs the same way everywhere the PyTorch contract is given (MASTER_ADDR,
MASTER_PORT, WORLD_SIZE, RANK):

    python train.py --epochs 20                           # one process, no distribution
    torchrun --nproc_per_node=2 train.py --epochs 20      # two processes on this host
    an EasyAI pytorch job (master + workers)              # the platform sets the variables

Each rank trains on its own shard of synthetic data; DDP averages the gradients
(gloo backend), so every rank holds the same model. Losses go to TensorBoard
summaries in $summary_dir (a CSV when the tensorboard package is missing), and
rank 0 saves the model to $model_dir.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
from datetime import timedelta
from pathlib import Path

# This example needs no NumPy; torch warns at import when it is missing.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

FEATURES = 8


class LossLog:
    """TensorBoard scalars when tensorboard is installed, else a CSV beside where they would be."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(directory))
            self._csv = None
        except ImportError:
            self._writer = None
            self._file = open(directory / "losses.csv", "w", newline="")  # noqa: SIM115 - closed in close()
            self._csv = csv.writer(self._file)
            self._csv.writerow(["epoch", "loss"])

    def add(self, epoch: int, loss: float) -> None:
        if self._writer is not None:
            self._writer.add_scalar("loss", loss, epoch)
        else:
            self._csv.writerow([epoch, f"{loss:.6f}"])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self._file.close()


def synthetic_shard(rank: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x . w + 0.5 + noise, with the same true w on every rank and different samples per rank."""
    true_w = torch.arange(1, FEATURES + 1, dtype=torch.float32) / FEATURES
    generator = torch.Generator().manual_seed(1000 + rank)
    x = torch.randn(samples, FEATURES, generator=generator)
    y = x @ true_w + 0.5 + 0.01 * torch.randn(samples, generator=generator)
    return x, y.unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=4096, help="samples per rank")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world_size > 1
    if distributed:
        # env:// reads MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK.
        dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=120))
    print(f"rank {rank} of world size {world_size} (pid {os.getpid()})", flush=True)

    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model: nn.Module = nn.Linear(FEATURES, 1)
    if distributed:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    x, y = synthetic_shard(rank, args.samples)

    # The platform's storage variables are lower case (summary_dir, model_dir), as the seed design named them.
    summaries = LossLog(Path(os.environ.get("summary_dir", "runs/summary")))  # noqa: SIM112
    started = time.monotonic()
    loss_value = float("nan")
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        total, batches = 0.0, 0
        for start in range(0, len(x), args.batch_size):
            index = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()  # DDP all-reduces the gradients here
            optimizer.step()
            total += loss.item()
            batches += 1
        loss_value = total / batches
        if distributed:
            mean = torch.tensor([loss_value])
            dist.all_reduce(mean)
            loss_value = mean.item() / world_size
        summaries.add(epoch, loss_value)
        if rank == 0:
            print(f"epoch {epoch}/{args.epochs} loss {loss_value:.6f}", flush=True)
    summaries.close()

    if rank == 0:
        model_dir = Path(os.environ.get("model_dir", "runs/model"))  # noqa: SIM112
        model_dir.mkdir(parents=True, exist_ok=True)
        plain = model.module if isinstance(model, DistributedDataParallel) else model
        torch.save(plain.state_dict(), model_dir / "model.pt")
        print(f"saved {model_dir / 'model.pt'}", flush=True)
    print(f"rank {rank} final loss {loss_value:.6f} after {time.monotonic() - started:.2f}s", flush=True)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
