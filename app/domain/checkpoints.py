"""Which epochs have a checkpoint, by the trainer contract (SPEC §6): one per validated
epoch (every `val_interval` epochs) and one for the last epoch reached."""

from __future__ import annotations


def epoch_has_checkpoint(
    epoch: int, total_epoch: int, val_interval: int, last_checkpoint_epoch: int | None
) -> bool:
    if last_checkpoint_epoch is None or not 1 <= epoch <= last_checkpoint_epoch:
        return False
    return epoch == last_checkpoint_epoch or epoch % val_interval == 0


def checkpoint_epochs(
    total_epoch: int, val_interval: int, last_checkpoint_epoch: int | None
) -> list[int]:
    if last_checkpoint_epoch is None:
        return []
    return [
        e
        for e in range(1, last_checkpoint_epoch + 1)
        if epoch_has_checkpoint(e, total_epoch, val_interval, last_checkpoint_epoch)
    ]


def expected_val_rows(total_epoch: int, val_interval: int) -> int:
    """A complete training's val.csv has this many data rows (SPEC §5)."""
    return total_epoch // val_interval
