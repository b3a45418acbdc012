"""escalator: decide, per customer turn, whether a chatbot conversation goes to a person."""

__version__ = "0.1.0"
