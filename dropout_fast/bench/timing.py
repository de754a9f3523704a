"""Timing: warm-up, calibration, A/B-interleaved rounds, median and spread.

Every implementation of one case runs in the same process over the same
arrays. A round runs each implementation once in turn (A, B, C, A, B, C, ...),
so drift on a shared machine (another job, frequency changes) hits all of them
alike; each sample repeats the call enough times to last about `min_time`
seconds, so the clock's resolution does not matter.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median over rounds and the relative spread
    (interquartile range / median; (max - min) / median under 4 rounds)."""

    median: float
    spread: float
    samples: List[float]


def summarize(samples: List[float]) -> Timing:
    med = statistics.median(samples)
    if len(samples) >= 4:
        q = statistics.quantiles(samples, n=4)
        width = q[2] - q[0]
    else:
        width = max(samples) - min(samples)
    return Timing(med, width / med if med > 0 else 0.0, list(samples))


def calibrate(fn: Callable[[], object], min_time: float) -> Tuple[int, float]:
    """(calls per sample so that one sample lasts about min_time, seconds of one
    call), after a warm-up call (JIT compilation, page faults, caches)."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-8)
    return max(1, int(min_time / one)), one


def time_interleaved(impls: Dict[str, Callable[[], object]], rounds: int, min_time: float,
                     slow_rounds: int = 2, max_time: float = 0.1) -> Dict[str, Timing]:
    """Timing of each implementation, `rounds` samples each, A/B interleaved.

    A call slower than `max_time` is sampled `slow_rounds` times only, its
    calibration call being the first sample (it is far from the noise floor
    anyway), which keeps full sweeps bounded."""
    loops, samples, want = {}, {}, {}
    for name, fn in impls.items():
        loops[name], one = calibrate(fn, min_time)
        slow = one > max_time
        samples[name] = [one] if slow else []
        want[name] = min(slow_rounds, rounds) if slow else rounds
    for _ in range(rounds):
        for name, fn in impls.items():
            if len(samples[name]) >= want[name]:
                continue
            k = loops[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: summarize(s) for name, s in samples.items()}
