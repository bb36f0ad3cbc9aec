"""Where each request goes: the one PROCESSOR_URL, or a subset chosen by the published weights."""

from __future__ import annotations

import random

from istio_burst.core.contracts import PRIMARY_ONLY, SUBSET_BURST, SUBSET_PRIMARY, Weights
from istio_burst.frontend.settings import DEFAULT_TARGET


class Router:
    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = dict(targets)
        self.weights = PRIMARY_ONLY
        # "default" until the watcher has published weights, then "redis".
        self.weights_source = "default"

    @property
    def splits(self) -> bool:
        """True when we choose the subset; False when one URL is given and the mesh chooses."""
        return DEFAULT_TARGET not in self.targets

    def set_weights(self, weights: Weights | None) -> None:
        """Follow the watcher's weights; None (nothing published) means the default 100/0."""
        self.weights = weights or PRIMARY_ONLY
        self.weights_source = "redis" if weights is not None else "default"

    def pick(self) -> tuple[str, str]:
        """(target name, URL) for the next request."""
        if not self.splits:
            return DEFAULT_TARGET, self.targets[DEFAULT_TARGET]
        name = SUBSET_PRIMARY if random.random() * 100 < self.weights.primary else SUBSET_BURST
        return name, self.targets[name]

    def describe(self) -> dict[str, object]:
        """What the pages show: the weights in force, where they come from, and who applies them."""
        return {
            **self.weights.as_dict(),
            "source": self.weights_source,
            "applied_by": "frontend" if self.splits else "mesh",
        }
