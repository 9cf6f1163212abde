"""The trainer's terminal side: a progress bar, and Ctrl-C that stops cleanly."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Protocol


class Stoppable(Protocol):
    """Something that can be asked to stop after its current step."""

    @property
    def stop_requested(self) -> bool: ...

    def request_stop(self) -> None: ...


class ProgressBar:
    """tqdm over the run's progress in permille (integers: no float drift past 100 %), with
    step, loss and tokens/s."""

    def __init__(self, enabled: bool, start: float):
        self.bar = None
        self.done = min(1000, int(1000 * start))
        if enabled:
            from tqdm.auto import tqdm

            fmt = "{percentage:3.0f}%|{bar:24}| {elapsed}<{remaining}{postfix}"
            self.bar = tqdm(total=1000, initial=self.done, file=sys.stderr, bar_format=fmt,
                            mininterval=0.5, dynamic_ncols=True)

    def update(self, fraction: float, step: int, loss: float, rate: float) -> None:
        if self.bar is None:
            return
        target = min(1000, int(1000 * fraction))
        self.bar.set_postfix_str(f"step {step} loss {loss:.3f} {rate:,.0f} tok/s", refresh=False)
        self.bar.update(target - self.done)
        self.done = target

    def write(self, message: str) -> None:
        if self.bar is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self.bar.write(message, file=sys.stderr)

    def close(self, finished: bool) -> None:
        if self.bar is not None:
            if finished:
                self.bar.update(1000 - self.done)
            self.bar.close()


class StopOnSigint:
    """First Ctrl-C: finish the step, checkpoint and stop. Second Ctrl-C: stop at once."""

    def __init__(self, trainer: Stoppable):
        self.trainer = trainer
        self.previous = None

    def _handle(self, signum, frame):
        if self.trainer.stop_requested:
            raise KeyboardInterrupt
        self.trainer.request_stop()
        print("\nassoclm train: stopping after this step and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
