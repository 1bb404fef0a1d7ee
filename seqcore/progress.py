"""A one-line progress bar for fit/evaluate (verbose=1): steps done, elapsed time, samples per
second and the running logs, redrawn in place on a terminal."""
import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    def __init__(self, total, prefix="", width=24, file=None):
        self.total, self.prefix, self.width = total, prefix, width
        self.file = file or sys.stderr
        self.start = time.perf_counter()
        self._last = 0.0
        # redrawing in place needs a terminal; a log file gets one line per epoch
        self._live = hasattr(self.file, "isatty") and self.file.isatty()

    def update(self, done, samples, logs, final=False):
        now = time.perf_counter()
        if not final and (not self._live or now - self._last < 0.1):   # <= 10 redraws/s
            return
        self._last = now
        elapsed = now - self.start
        filled = int(self.width * done / max(1, self.total))
        bar = "=" * filled + (">" if filled < self.width else "") + "." * max(
            0, self.width - filled - 1)
        rate = samples / elapsed if elapsed > 0 else 0.0
        values = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        line = (f"{self.prefix}{done}/{self.total} [{bar}] {elapsed:.1f}s "
                f"{rate:,.0f} samples/s" + (f" - {values}" if values else ""))
        self.file.write(("\r" if self._live else "") + line + ("\n" if final else ""))
        self.file.flush()
