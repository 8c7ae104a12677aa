"""Fault injection of the engine simulator, for reliability tests.

A fault is set when the simulator starts (``fault=...`` option) or at runtime through
``POST /_simulator/faults`` with ``{"mode": ..., "duration_s": float | null, "rate": 0..1}``.
While it is active, each generation request is hit with probability ``rate``:

* ``hang``: the request is accepted and never answered; it ends only when the client goes away.
* ``error500``: HTTP 500 with the protocol's error body.
* ``malformed``: HTTP 200 whose content is cut mid-document, so it is not valid JSON.
* ``latency_spike``: the request waits ``latency_spike_s`` (scaled) before it is scheduled.

``duration_s`` ends the fault by itself (``null``: until replaced); ``mode: "none"`` ends it now.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class FaultMode(enum.StrEnum):
    """The kinds of fault the simulator can inject."""

    NONE = "none"
    HANG = "hang"
    ERROR500 = "error500"
    MALFORMED = "malformed"
    LATENCY_SPIKE = "latency_spike"


@dataclass(frozen=True)
class FaultConfig:
    """One fault setting: which fault, for how long, for what share of requests."""

    mode: FaultMode = FaultMode.NONE
    duration_s: float | None = None
    rate: float = 1.0

    @classmethod
    def parse(cls, body: Any) -> FaultConfig:
        """Reads the JSON body of ``POST /_simulator/faults``; raises ``ValueError`` if invalid."""
        if isinstance(body, str):
            body = {"mode": body}
        if not isinstance(body, Mapping):
            raise ValueError("expected a JSON object with a 'mode'")
        unknown = set(body) - {"mode", "duration_s", "rate"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            mode = FaultMode(body.get("mode", "none"))
        except ValueError:
            modes = ", ".join(m.value for m in FaultMode)
            raise ValueError(f"mode must be one of: {modes}") from None
        duration = body.get("duration_s")
        rate = body.get("rate", 1.0)
        if duration is not None and (not isinstance(duration, int | float) or duration < 0):
            raise ValueError("duration_s must be a non-negative number or null")
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be a number from 0 to 1")
        return cls(mode, None if duration is None else float(duration), float(rate))

    def to_json(self) -> dict[str, Any]:
        """The setting as the admin route reports it."""
        return {"mode": self.mode.value, "duration_s": self.duration_s, "rate": self.rate}


class FaultInjector:
    """Holds the active fault and decides, request by request, whether it strikes."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._rng = random.Random(seed)
        self._config = FaultConfig()
        self._until: float | None = None
        self.injected: dict[str, int] = {m.value: 0 for m in FaultMode if m is not FaultMode.NONE}
        self.set(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        """The fault in force now (``none`` once a timed fault has expired)."""
        if self._until is not None and self._clock() >= self._until:
            self._config, self._until = FaultConfig(), None
        return self._config

    def set(self, config: FaultConfig) -> None:
        """Replaces the active fault; a duration counts from now."""
        self._config = config
        self._until = None if config.duration_s is None else self._clock() + config.duration_s

    def draw(self) -> FaultMode:
        """Decides the fate of one request: the active mode with probability ``rate``."""
        config = self.config
        if config.mode is FaultMode.NONE or self._rng.random() >= config.rate:
            return FaultMode.NONE
        self.injected[config.mode.value] += 1
        return config.mode

    def to_json(self) -> dict[str, Any]:
        """The active fault, its remaining time and what was injected so far."""
        config = self.config
        remaining = None if self._until is None else max(0.0, self._until - self._clock())
        return {**config.to_json(), "remaining_s": remaining, "injected": dict(self.injected)}
