"""Model routing: which configured model serves a request, and its A/B variant.

A request's ``model`` (a batch line's ``body.model``) picks a route by name; a
request naming no model goes to the default route, or is split across weighted
variants for an A/B run. A name no route serves is a permanent error (dead letter).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from consumer.errors import RoutingError
from consumer.jobs import Route
from consumer.schemas import AnyRequest, BatchRequestLine


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of a weighted split."""

    name: str
    model: str
    weight: float


class ModelRouter:
    """Chooses a `Route` per request.

    Args:
        backend: backend name recorded in results.
        default_model: engine model for requests naming none.
        prompt_version: template version recorded in results.
        variants: optional weighted split for requests naming no model.
        seed: seed of the split's random choice (None: unpredictable).
    """

    def __init__(
        self,
        backend: str,
        default_model: str,
        prompt_version: str,
        variants: list[Variant] | None = None,
        seed: int | None = None,
    ) -> None:
        self._backend = backend
        self._version = prompt_version
        self._variants = variants or []
        self._rng = random.Random(seed)
        self._default = Route(default_model, backend, None, prompt_version)
        self._by_name = {default_model: self._default}
        for v in self._variants:
            self._by_name[v.model] = Route(v.model, backend, v.name, prompt_version)

    @property
    def models(self) -> list[str]:
        """Every engine model a route may send to."""
        return sorted(self._by_name)

    def route(self, request: AnyRequest) -> Route:
        """The route of ``request``.

        Raises:
            RoutingError: the request names a model no route serves.
        """
        if isinstance(request, BatchRequestLine):
            name = request.body.get("model")
            name = name if isinstance(name, str) else None
        else:
            name = request.model
        if name is None:
            return self._split() if self._variants else self._default
        route = self._by_name.get(name)
        if route is None:
            raise RoutingError(f"model {name!r} is not served here; served: {self.models}")
        return route

    def _split(self) -> Route:
        variant = self._rng.choices(self._variants, weights=[v.weight for v in self._variants])[0]
        return self._by_name[variant.model]
