"""A PyTorch trainer for trainyard: ImageNet-shaped synthetic batches, a tiny CNN, a
multi-worker DataLoader. The contract (arguments, CSVs, checkpoints, progress, resume,
SIGTERM, EVAL files) is the helper library's: trainyard_trainer (trainer/README.md).

params: classes (4), batch_size (64), image_size (224), train_batches (4), val_batches (2),
test_batches (2), num_workers (2), lr (0.01), seed (0). The data is generated, not read:
--dataset-dir is ignored.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch works without it
import torch  # noqa: E402
import trainyard_trainer as ty  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}


class SyntheticBatches(Dataset):
    """Item i is a whole batch (images, labels), made from a seed: the same for the same
    (seed, split, epoch, i) in any worker, so a resumed run sees the data a straight one does.
    Each class brightens its own channel, so there is something to learn."""

    def __init__(self, p: dict[str, Any], split: str, epoch: int, batches: int) -> None:
        self.p, self.batches = p, batches
        self.base = (int(p["seed"]) * 1000 + SPLIT_SEEDS[split]) * 100_000 + epoch * 1000

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.base + i)
        n, size, k = int(self.p["batch_size"]), int(self.p["image_size"]), int(self.p["classes"])
        labels = torch.randint(0, k, (n,), generator=g)
        images = torch.randn(n, 3, size, size, generator=g)
        images[torch.arange(n), labels % 3] += 0.5 + (labels // 3).float().unsqueeze(1).unsqueeze(1)
        return images, labels


def loader(p: dict[str, Any], split: str, epoch: int) -> DataLoader:
    # batch_size=None: items are batches already. The workers hand each 38 MB batch
    # (64x3x224x224 float32) to the trainer through /dev/shm.
    dataset = SyntheticBatches(p, split, epoch, int(p[f"{split}_batches"]))
    return DataLoader(dataset, batch_size=None, num_workers=int(p["num_workers"]))


def build_model(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=8, stride=8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(8 * 16, classes),
    )  # fmt: skip


def evaluate(model: nn.Module, batches: DataLoader) -> tuple[float, list[list[int]]]:
    """Mean loss and the confusion matrix (rows: actual class, columns: predicted)."""
    k = model[-1].out_features
    matrix, loss_sum, count = torch.zeros(k, k, dtype=torch.long), 0.0, 0
    model.eval()
    with torch.no_grad():
        for images, labels in batches:
            logits = model(images)
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            count += len(labels)
            matrix.index_put_((labels, logits.argmax(1)), torch.tensor(1), accumulate=True)
    return loss_sum / max(count, 1), matrix.tolist()


def train(ctx: ty.Contract, p: dict[str, Any]) -> int:
    torch.manual_seed(int(p["seed"]))
    model = build_model(int(p["classes"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
    if ctx.resume_from:
        state = torch.load(ctx.checkpoint_file(ctx.resume_from), weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])

    def checkpoint(epoch: int) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": torch.get_rng_state(), "epoch": epoch}  # fmt: skip
        ctx.save_checkpoint(epoch, lambda f: torch.save(state, f))

    for epoch in range(ctx.start_epoch(), ctx.total_epoch + 1):
        model.train()
        loss_sum = correct = count = 0.0
        for images, labels in loader(p, "train", epoch):
            if ctx.should_stop():  # SIGTERM: drop this epoch, keep the last finished one
                break
            optimizer.zero_grad()
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            count += len(labels)
        if ctx.should_stop():
            break
        ctx.log_train(epoch, loss=loss_sum / count, accuracy=correct / count)
        print(f"epoch {epoch}/{ctx.total_epoch}: loss {loss_sum / count:.4f}", flush=True)
        if ctx.is_val_epoch(epoch):
            val_loss, matrix = evaluate(model, loader(p, "val", epoch))
            accuracy = sum(matrix[i][i] for i in range(len(matrix))) / max(sum(map(sum, matrix)), 1)
            ctx.log_val(epoch, val_loss=val_loss, val_accuracy=accuracy)
        if ctx.wants_checkpoint(epoch):
            checkpoint(epoch)
        ctx.write_progress(epoch)
    if ctx.epochs_done > (ctx.last_checkpoint or 0):  # stopped between checkpoints
        checkpoint(ctx.epochs_done)
        ctx.write_progress(ctx.epochs_done)
    return ctx.finish()


def test(ctx: ty.Contract, p: dict[str, Any]) -> int:
    if not ctx.checkpoint_file(ctx.epoch).exists():
        raise ty.ContractError(f"checkpoint not found: {ctx.checkpoint_file(ctx.epoch)}")
    model = build_model(int(p["classes"]))
    model.load_state_dict(torch.load(ctx.checkpoint_file(ctx.epoch), weights_only=True)["model"])
    test_loss, matrix = evaluate(model, loader(p, "test", 0))
    classes = [f"class_{i}" for i in range(int(p["classes"]))]
    summary = ty.make_summary(ctx.epoch, classes, matrix, test_loss=test_loss, backend="torch")
    per_class = {f"acc_{c}": v["accuracy"] for c, v in summary["per_class"].items()}
    row = {"test_loss": test_loss, "test_accuracy": summary["test_accuracy"], **per_class}
    ctx.write_eval(row, summary)
    print(f"test epoch {ctx.epoch}: accuracy {summary['test_accuracy']:.4f}", flush=True)
    return 0


DEFAULTS = {"classes": 4, "batch_size": 64, "image_size": 224, "train_batches": 4,
            "val_batches": 2, "test_batches": 2, "num_workers": 2, "lr": 0.01,
            "seed": 0}  # fmt: skip


def main() -> int:
    ctx = ty.Contract.from_argv(prog="train.py")
    p = {**DEFAULTS, **{k: v for k, v in ctx.params.items() if k in DEFAULTS}}
    return ty.run_guarded(lambda: train(ctx, p) if ctx.job_type == "TRAIN" else test(ctx, p))


if __name__ == "__main__":
    sys.exit(main())
