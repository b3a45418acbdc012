"""The action server's actions: importing the action registers it with rasa_sdk.

    ESCALATOR_URL=http://127.0.0.1:8080 python -m rasa_sdk --actions actions  # in examples/rasa
"""

from escalator.integrations.rasa import EscalatorAction

__all__ = ["EscalatorAction"]
