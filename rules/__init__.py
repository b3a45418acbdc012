"""The default policy shipped with escalator: rule files, lexicons and rule tests (data only)."""
