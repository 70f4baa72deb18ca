"""Small fakes shared by the tests (imported as a top-level module, like agentharness)."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock the test moves by hand (`now`).

    With `step`, every read first advances it by `step` (a clock that never
    stands still, e.g. 1 ms per read).
    """

    def __init__(self, now: float = 1000.0, *, step: float = 0.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now
