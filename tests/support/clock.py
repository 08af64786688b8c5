"""A stand-in for the `time` module in code that waits: sleeping advances the clock at once."""


class SleeplessClock:
    def __init__(self, now: float = 1000.0):
        self.now = now
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
