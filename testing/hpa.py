"""The HorizontalPodAutoscaler's documented algorithm, to replay an HPA spec against live data.

Per evaluation (kubernetes.io "Horizontal Pod Autoscaling", "Algorithm details" and
"Configurable scaling behavior"):

1. raw = ceil(current * value / target), or ``current`` when value / target is within the
   tolerance (0.1) of 1;
2. stabilisation: the highest raw recommendation of the scale-down window and the lowest of
   the scale-up window bound the move (a window of 0 is the current recommendation);
3. rate policies: a ``Pods`` policy allows ``value`` pods per ``periodSeconds`` and a
   ``Percent`` policy ``value`` % of the replicas at the period's start, counting the scale
   events of the past period; ``selectPolicy: Max`` (the default) takes the policy that allows
   the larger change;
4. ``minReplicas`` <= desired <= ``maxReplicas``.

Durations can be scaled (``time_scale``) so a test replays minutes of behaviour in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    kind: str  # "Pods" or "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    """One direction of ``spec.behavior``: its window, policies and policy selection."""

    window_s: float
    policies: tuple[Policy, ...]
    select: str = "Max"

    @classmethod
    def parse(cls, spec: dict[str, Any], scale: float) -> Rules:
        policies = tuple(
            Policy(p["type"], int(p["value"]), p["periodSeconds"] * scale)
            for p in spec.get("policies", [])
        )
        window = spec.get("stabilizationWindowSeconds", 0) * scale
        return cls(window, policies, spec.get("selectPolicy", "Max"))


@dataclass(frozen=True)
class Decision:
    """One evaluation: the metric, the raw proposal and what the HPA sets."""

    t: float
    current: int
    value: float
    raw: int
    desired: int


@dataclass
class Autoscaler:
    """Replays one HPA with a single ``Pods`` / ``AverageValue`` metric."""

    target: float
    min_replicas: int
    max_replicas: int
    up: Rules
    down: Rules
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def from_spec(cls, hpa: dict[str, Any], target: float, time_scale: float = 1.0) -> Autoscaler:
        """From a rendered HPA object (its ``spec.behavior`` and replica bounds)."""
        spec = hpa["spec"]
        behavior = spec.get("behavior", {})
        return cls(
            target,
            spec.get("minReplicas", 1),
            spec["maxReplicas"],
            Rules.parse(behavior.get("scaleUp", {}), time_scale),
            Rules.parse(behavior.get("scaleDown", {"stabilizationWindowSeconds": 300}), time_scale),
        )

    def raw(self, current: int, value: float) -> int:
        """Step 1: the proportional proposal with the tolerance."""
        ratio = value / self.target
        if abs(ratio - 1.0) <= TOLERANCE:
            return current
        return math.ceil(current * ratio)

    def evaluate(self, t: float, current: int, value: float) -> Decision:
        """One HPA sync at time ``t`` (seconds) with ``current`` ready replicas."""
        raw = self.raw(current, value)
        self.recommendations.append((t, raw))
        desired = self._limit(t, current, self._stabilised(t, current, raw))
        if desired != current:
            self.events.append((t, desired - current))
        return Decision(t, current, value, raw, desired)

    def _stabilised(self, t: float, current: int, raw: int) -> int:
        up_recs = [r for when, r in self.recommendations if when > t - self.up.window_s]
        down_recs = [r for when, r in self.recommendations if when > t - self.down.window_s]
        up_bound = min(up_recs, default=raw)
        down_bound = max(down_recs, default=raw)
        return min(max(current, up_bound), down_bound)

    def _limit(self, t: float, current: int, desired: int) -> int:
        if desired > current:
            limit = max(self._rate_limit(t, current, self.up, +1), current)
            return max(min(desired, limit, self.max_replicas), self.min_replicas)
        if desired < current:
            limit = min(self._rate_limit(t, current, self.down, -1), current)
            return min(max(desired, limit, self.min_replicas), self.max_replicas)
        return min(max(desired, self.min_replicas), self.max_replicas)

    def _rate_limit(self, t: float, current: int, rules: Rules, sign: int) -> int:
        if rules.select == "Disabled":
            return current
        if not rules.policies:  # the defaults allow any move
            return self.max_replicas if sign > 0 else self.min_replicas
        limits = []
        for policy in rules.policies:
            moved = sum(d for when, d in self.events if when > t - policy.period_s and d * sign > 0)
            start = current - moved
            if policy.kind == "Pods":
                limits.append(start + sign * policy.value)
            elif sign > 0:
                limits.append(math.ceil(start * (1 + policy.value / 100)))
            else:
                limits.append(math.floor(start * (1 - policy.value / 100)))
        wider = max if (rules.select == "Max") == (sign > 0) else min
        return wider(limits)
