"""How long upstream tasks take: learned from the tasks a function saw end, seeded by a prior.

Kept in the memory of a warm function (the poll step learns from the tasks it sees end, the API
from the succeeded jobs it reads), so learning costs no AWS call at all; a cold start begins
again from the deployment's prior (`TaskSecondsPrior`). Quantiles, never means: one task stuck
in a queue moves them by one sample out of many.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections import deque

from zimage.clock import epoch_seconds

# Etas come in whole seconds, so a task may end up to this long before its eta says.
ETA_GRANULARITY_SECONDS = 1.0
# The typical duration the prior centres on where the deployment names none (TaskSecondsPrior).
DEFAULT_TASK_SECONDS = 5.0
# The prior's spread around the typical duration: wide, so that before any history the schedule
# still looks at every plausible moment.
PRIOR_SPREAD = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0)
# The prior is dropped once this many real samples are in: from then on history alone speaks.
PRIOR_DROPPED_AFTER = 8
KEPT_SAMPLES = 64
# A task found ended after a Wait is placed, this share of the time, where one of history's samples
# lies within the same span; the rest of the time anywhere in it (Durations.add_ended).
FROM_HISTORY_SHARE = 0.5
# Whether the upstream's eta has been right lately, over this many of the last tasks that had one.
KEPT_ETA_VERDICTS = 16


class Durations:
    """Task durations in seconds, from the moment the job was submitted to the task's end."""

    def __init__(self, typical_seconds: float, *, kept: int = KEPT_SAMPLES, draw: random.Random | None = None) -> None:
        self._prior = sorted(typical_seconds * factor for factor in PRIOR_SPREAD)
        self._samples: deque[float] = deque(maxlen=kept)
        # Per sample, whether it is a copy of another's (Durations.add_ended).
        self._copies: deque[bool] = deque(maxlen=kept)
        self._eta_verdicts: deque[bool] = deque(maxlen=KEPT_ETA_VERDICTS)
        self._sorted: list[float] = list(self._prior)
        self._keys: deque[str] = deque(maxlen=4 * kept)
        self._lock = threading.Lock()
        self._draw = draw or random.Random()  # noqa: S311 - places an end, guards nothing

    def add_once(self, key: str, seconds: float) -> None:
        """A duration learned from a record that may be read again (the API reads a job many
        times): counted once per key, among the keys remembered."""
        if self.first_sight(key):
            self.add(seconds)

    def first_sight(self, key: str) -> bool:
        """Whether `key` (a job's, a task's) is new among the keys remembered; it is from now on."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys.append(key)
            return True

    def add(self, seconds: float) -> None:
        """One task's duration, as seen ending."""
        self._append(seconds, copied=False)

    def _append(self, seconds: float, *, copied: bool) -> None:
        """`copied`: placed where another sample lies (add_ended)."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        with self._lock:
            self._samples.append(float(seconds))
            self._copies.append(copied)
            pool = list(self._samples)
            if len(pool) < PRIOR_DROPPED_AFTER:
                pool += self._prior
            self._sorted = sorted(pool)

    def add_ended(self, running_at: float | None, ended_by: float) -> None:
        """One task seen ending between the last answer that found it running (None: none did) and
        the first that found it ended, both in seconds since the submit. Where in that span, the
        answers cannot tell, so the end is drawn: FROM_HISTORY_SHARE of the time, when history
        holds samples within the same span, from those (history's estimate of where tasks end
        in it), the rest of the time uniformly from the span.
        Not its middle: a task found ended by the first poll after a long Wait would be learned
        where no task ends, and history would slide early, and the first Wait with it. Uniform
        alone does that more slowly: the tasks that end within the first Wait, spread over all of
        it, pull its plan below where any task ends, the more so the longer that Wait was (as when
        a trusted eta lengthened it). History alone would be late to learn that the upstream grew
        faster: tasks found ended by the first poll would be placed where tasks ended before, and
        the first Wait would shorten only once they had replaced all of history. Half of each stays
        where tasks end and still finds faster ones. A copy is never copied again: copies of
        copies would pile up at one moment."""
        after = running_at or 0.0
        span = ended_by - after
        if span <= 0 or not math.isfinite(ended_by):
            self.add(ended_by)
            return
        with self._lock:
            seen = list(zip(self._samples, self._copies, strict=True))
        within = [seconds for seconds, copied in seen if after <= seconds <= ended_by and not copied]
        if within and self._draw.random() < FROM_HISTORY_SHARE:
            self._append(self._draw.choice(within), copied=True)
        else:
            self.add(after + span * self._draw.random())

    def longest(self) -> float:
        """The longest duration the estimate holds (the prior's too, until it is dropped)."""
        return self._sorted[-1]

    @property
    def learned(self) -> int:
        """How many real samples the estimate holds (the rest is prior)."""
        return len(self._samples)

    def quantile_after(self, elapsed: float, q: float) -> float | None:
        """The q-quantile of a task's duration given that it lasted past `elapsed`: the empirical
        distribution of the longer samples, interpolated from `elapsed` itself (so a gap is never
        rounded to a whole sample). None when no sample lasted that long."""
        ordered = self._sorted
        rest = ordered[bisect.bisect_right(ordered, elapsed) :]
        if not rest:
            return None
        points = [elapsed, *rest]
        position = min(max(q, 0.0), 1.0) * len(rest)
        low = int(position)
        if low >= len(rest):
            return points[-1]
        fraction = position - low
        return points[low] + (points[low + 1] - points[low]) * fraction

    def expected_end(self, elapsed: float) -> float | None:
        """The median end of a task still running at `elapsed`."""
        return self.quantile_after(elapsed, 0.5)

    def eta_seconds(self, elapsed: float) -> int | None:
        """What a job still running at `elapsed` is shown as its eta when the upstream gives none:
        the median end of the tasks that ran that long, from now, in whole seconds rounded up as
        upstream etas are."""
        end = self.expected_end(elapsed)
        return None if end is None else max(1, math.ceil(end - elapsed))

    def record_eta_verdict(self, right: bool) -> None:
        """Whether the first eta of a task that ended told its end."""
        with self._lock:
            self._eta_verdicts.append(right)

    def eta_trusted(self) -> bool:
        """Whether the upstream's etas have lately been right at least half of the time; with no
        verdict yet they are (an upstream that sends an eta usually means it)."""
        verdicts = list(self._eta_verdicts)
        return not verdicts or 2 * sum(verdicts) >= len(verdicts)


def job_seconds(created_at: str, completed_at: str) -> float:
    """How long a job took, submit to its record saying it ended, from its record's stamps."""
    return epoch_seconds(completed_at) - epoch_seconds(created_at)
