"""Per-epoch training records: a log line, ``training_log.jsonl`` and ``progress.png``.

The records live in the checkpoint too, so a resumed run rewrites the log exactly up to where
it continues (epochs logged after the last checkpoint of a killed run are dropped, as their
training is redone).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from autolung.provenance import figure_metadata
from autolung.results import PROGRESS_PLOT_FILE, TRAINING_LOG_FILE
from autolung.utils.atomic import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)


class TrainingLogger:
    """Collects one record per epoch and writes them out.

    Args:
        folder: the fold folder.
        class_names: one name per pseudo-Dice channel.
        plans_digest: digest of the run's plans, kept in ``progress.png``'s text fields.
    """

    def __init__(self, folder: Path, class_names: list[str], plans_digest: str | None = None) -> None:
        self.folder = Path(folder)
        self.class_names = class_names
        self.plans_digest = plans_digest
        self.records: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"records": [dict(r) for r in self.records]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = [dict(r) for r in state.get("records", [])]

    def log_epoch(self, record: dict[str, Any], eta_s: float | None) -> None:
        """Append ``record``, log its summary line and rewrite the JSONL log.

        Args:
            record: epoch, train_loss, val_loss, pseudo_dice (list), ema_pseudo_dice, lr,
                epoch_time_s, data_wait_fraction.
            eta_s: estimated seconds until training ends, when known.

        Returns:
            None.
        """
        self.records.append(dict(record))
        logger.info(format_epoch_line(record, self.class_names, eta_s))
        self.write_jsonl()

    def write_jsonl(self) -> None:
        """Rewrite ``training_log.jsonl`` (atomic) from the records.

        Returns:
            None.
        """
        lines = [json.dumps(r, sort_keys=True) for r in self.records]
        write_text_atomic(self.folder / TRAINING_LOG_FILE, "\n".join(lines) + ("\n" if lines else ""))

    def plot(self) -> None:
        """Draw losses, pseudo-Dice, learning rate and epoch time into ``progress.png``.

        Returns:
            None.
        """
        if not self.records:
            return
        plot_progress(self.records, self.class_names, self.folder / PROGRESS_PLOT_FILE, self.plans_digest)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_epoch_line(record: dict[str, Any], class_names: list[str], eta_s: float | None) -> str:
    """One human-readable line per epoch.

    Returns:
        The line.
    """
    dice = ", ".join(f"{name} {_fmt(d, 3)}" for name, d in zip(class_names, record.get("pseudo_dice", [])))
    eta = "" if eta_s is None else f" | ETA {format_seconds(eta_s)}"
    return (f"epoch {record['epoch']}: train loss {_fmt(record['train_loss'])} | val loss {_fmt(record['val_loss'])}"
            f" | pseudo-Dice [{dice}] (EMA {_fmt(record.get('ema_pseudo_dice'), 3)}) | lr {record['lr']:.2e}"
            f" | {record['epoch_time_s']:.1f} s, data wait {100 * record['data_wait_fraction']:.0f}%{eta}")


def format_seconds(seconds: float) -> str:
    """"1h02m", "3m05s" or "42s".

    Returns:
        The formatted duration.
    """
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def plot_progress(records: list[dict[str, Any]], class_names: list[str], path: Path,
                  plans_digest: str | None = None) -> None:
    """Write the progress figure (Agg backend, no display needed).

    Returns:
        None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    figure, axes = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    axes[0].plot(epochs, [r["train_loss"] for r in records], label="train loss")
    axes[0].plot(epochs, [r["val_loss"] for r in records], label="val loss")
    dice_axis = axes[0].twinx()
    for index, name in enumerate(class_names):
        dice_axis.plot(epochs, [r["pseudo_dice"][index] for r in records], ":", label=f"pseudo-Dice {name}")
    dice_axis.plot(epochs, [r["ema_pseudo_dice"] for r in records], "g--", label="pseudo-Dice (EMA)")
    dice_axis.set_ylim(0, 1)
    axes[0].legend(loc="upper left")
    dice_axis.legend(loc="upper right")
    axes[1].plot(epochs, [r["epoch_time_s"] for r in records], label="epoch time (s)")
    axes[1].plot(epochs, [100 * r["data_wait_fraction"] for r in records], label="data wait (%)")
    axes[1].legend()
    axes[2].plot(epochs, [r["lr"] for r in records], label="learning rate")
    axes[2].set_xlabel("epoch")
    axes[2].legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80, format="png", metadata=figure_metadata(plans_digest))
    plt.close(figure)
