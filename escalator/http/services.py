"""The resources one app holds (config, policy, state store, pipeline, reloader, inline
evaluator), kept as the Flask app's extension, and their getter."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from escalator.config import Config
from escalator.http.inline import InlineEvaluator
from escalator.pipeline import Pipeline
from escalator.policy import PolicyHolder
from escalator.reloader import RuleReloader
from escalator.state.embedded import EmbeddedRedis
from escalator.state.store import StateStore

EXTENSION = "escalator"


@dataclass
class Services:
    """What create_app assembled; closed together when the app is torn down."""

    config: Config
    policies: PolicyHolder
    store: StateStore | None
    pipeline: Pipeline
    reloader: RuleReloader
    inline: InlineEvaluator
    embedded: EmbeddedRedis | None = None

    def close(self) -> None:
        """Release the state store, the embedded Redis (if we started it) and the engine."""
        self.reloader.stop()
        if self.pipeline.shadow is not None:
            self.pipeline.shadow.close()
        self.inline.close()
        if self.pipeline.decision_log is not None:
            self.pipeline.decision_log.close()
        if self.pipeline.handoffs is not None:
            self.pipeline.handoffs.close()
        if self.store is not None:
            self.store.close()
        if self.embedded is not None:
            self.embedded.shutdown()
        self.policies.close()


def services() -> Services:
    """The services of the app handling the current request."""
    svc: Services = current_app.extensions[EXTENSION]
    return svc
