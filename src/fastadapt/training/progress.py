"""The progress bar of meta-training, with the latest metrics beside it."""

from __future__ import annotations

from tqdm import tqdm


class ProgressBar:
    """A bar over the meta-updates of a run, shown unless ``enabled`` is false (or the output is no terminal)."""

    def __init__(self, name: str, steps: int, start: int, enabled: bool) -> None:
        self._bar = tqdm(total=steps, initial=start, desc=f"meta-train {name}", unit="step",
                         disable=None if enabled else True, dynamic_ncols=True)

    def advance(self) -> None:
        self._bar.update(1)

    def show(self, metrics: dict[str, float], extra: str = "") -> None:
        """Put ``metrics`` (and ``extra``) beside the bar, shown at its next refresh."""
        self._bar.set_postfix_str(describe(metrics, extra), refresh=False)

    def write(self, message: str) -> None:
        self._bar.write(message)

    def close(self) -> None:
        self._bar.close()


def describe(metrics: dict[str, float], extra: str = "") -> str:
    """``"loss 0.512, accuracy 0.800, extra"``."""
    parts = [f"{key} {value:.3f}" for key, value in metrics.items()]
    return ", ".join(parts + ([extra] if extra else []))
