"""A small tqdm-like progress display on stderr: count, rate, elapsed (and bar, time left)."""
import numbers
import os
import sys
import time

BAR_WIDTH = 20


def _format_time(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """Wrap ``iterable`` and report progress on stderr (or ``file``) while iterating over it.

        bar = progress(loader, desc="epoch 1")
        for x in bar:
            ...
            bar.set_postfix(loss=loss)

    Shows ``desc: 45%|#########           | 45/100 [00:03<00:04, 12.30 it/s, loss=0.123]``
    when the length is known (``total`` or ``len(iterable)``), else ``desc: 45 it [00:03,
    12.30 it/s]``. Off with ``disable=True`` or the environment variable ``MINIGEN_PROGRESS=0``.
    On a terminal the line is redrawn in place at most every ``mininterval`` seconds (default
    0.1); into a file or pipe a new line is written at most every 30 s, plus the final line.
    """

    def __init__(self, iterable, desc="", total=None, disable=False, file=None, mininterval=None):
        if total is None:
            try:
                total = len(iterable)
            except TypeError:  # a generator: length unknown
                pass
        self.iterable, self.desc, self.total = iterable, desc, total
        self.disable = disable or os.environ.get("MINIGEN_PROGRESS") == "0"
        self.file = sys.stderr if file is None else file
        self.tty = hasattr(self.file, "isatty") and self.file.isatty()
        self.mininterval = mininterval if mininterval is not None else (0.1 if self.tty else 30.0)
        self.postfix = ""
        self.n = 0
        self.width = 0  # length of the line last drawn, to blank it when redrawing
        self.drawn = None  # the count last drawn

    def set_postfix(self, **values):
        """Show ``name=value`` pairs after the rate (reals with 4 significant digits)."""
        self.postfix = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
            else f"{k}={v}" for k, v in values.items())

    def __iter__(self):
        if self.disable:
            yield from self.iterable
            return
        self.n, self.drawn = 0, None
        self.start = last = time.perf_counter()
        try:
            for item in self.iterable:
                yield item
                self.n += 1  # counts finished iterations, as tqdm does
                if time.perf_counter() - last >= self.mininterval:
                    self._draw()
                    last = time.perf_counter()
        finally:  # also runs on break (when the loop drops the generator) and on errors
            if self.tty or self.n != self.drawn:
                self._draw(final=True)

    def __len__(self):
        if self.total is None:
            raise TypeError("progress over an iterable of unknown length has no len()")
        return self.total

    def _draw(self, final=False):
        line = self._format(time.perf_counter() - self.start)
        if self.tty:
            self.file.write("\r" + line.ljust(self.width) + ("\n" if final else ""))
            self.width = len(line)
        else:
            self.file.write(line + "\n")
        self.file.flush()
        self.drawn = self.n

    def _format(self, elapsed):
        rate = self.n / elapsed if elapsed > 0 else 0.0
        speed = f"{1 / rate:.2f} s/it" if 0 < rate < 1 else f"{rate:.2f} it/s"
        if self.total:
            fraction = min(self.n / self.total, 1.0)
            left = _format_time(max(self.total - self.n, 0) / rate) if rate else "?"
            bar = "#" * int(fraction * BAR_WIDTH)
            text = (f"{fraction:4.0%}|{bar:<{BAR_WIDTH}}| {self.n}/{self.total} "
                    f"[{_format_time(elapsed)}<{left}, {speed}")
        else:
            text = f"{self.n} it [{_format_time(elapsed)}, {speed}"
        postfix = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc + ': ' if self.desc else ''}{text}{postfix}]"


progress = Progress  # the lower-case name people know from tqdm
