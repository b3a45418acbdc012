"""escalator: decide, per customer turn, whether a chatbot conversation goes to a person.

Where things are (every import points down the list):

- the edges: `http/` (the API: routes, errors, auth, OpenAPI, request logs, rule sets
  sent inline), `cli/` (the `escalator` command), `tools/` (the policy owners' offline
  tools: dry runs, rule tests, corpus replays, the fairness audit), `studio/` (the same
  tools as web pages for policy owners, beside http/: it serves people, not platforms),
  `integrations/` (platform adapters, which call the API and which the service never
  imports);
  `serving/` runs the app under gunicorn, `app.py` assembles it;
- where a turn is decided: `pipeline.py` (load state, score, evaluate the rules,
  commit, answer), with `policy.py` (the active rule set, compiled, and its lexicons)
  and `reloader.py` (hot reload of the rules folder);
- where a fact is computed: `scoring/`; where a rule is read, checked and compiled:
  `ruleset/` (the code for the policy owners' top-level rules/ folder);
  where state is written: `state/` (`store.py` is the only module that imports redis);
- shared below them: `model.py` (the typed values), `turnschema.py` (a turn as callers
  send it), `config.py`, `errors.py`, `metrics.py`, `decisionlog.py`, `logs.py`.

Feedback from agents would be a package beside tools/.
"""

__version__ = "0.1.0"
