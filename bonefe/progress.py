"""Stage-by-stage progress lines on rank 0, with wall time per stage."""

import sys
import time
from contextlib import contextmanager


class Progress:
    """Prints `[2/7] meshing ... 12.3 s` as each stage ends; silent on ranks other than 0 or when quiet."""

    def __init__(self, stages: list[str], rank: int = 0, quiet: bool = False, stream=None):
        self.stages = stages
        self.timings: dict[str, float] = {}
        self._show = rank == 0 and not quiet
        self._stream = stream

    @contextmanager
    def stage(self, name: str):
        """Time the stage `name` (one of the declared stages) and report it."""
        number = self.stages.index(name) + 1
        stream = self._stream or sys.stderr  # looked up now: the caller may have redirected it
        if self._show:
            print(f"[{number}/{len(self.stages)}] {name} ...", end="", file=stream, flush=True)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            if self._show:
                print(" failed", file=stream, flush=True)
            raise
        self.timings[name] = time.perf_counter() - start
        if self._show:
            print(f" {self.timings[name]:.1f} s", file=stream, flush=True)
