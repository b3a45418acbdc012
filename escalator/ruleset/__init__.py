"""The code of rule sets: how the policy owners' rule files (the top-level rules/ folder, or
any folder ESCALATOR_RULES_DIR names) are read, checked and compiled into the engine.

The facts catalogue rules are checked against, the loader and its checks (schemas, types,
the floor, the budget, label vocabularies), customer messages, and the durable-rules
compiler (the only module that imports durable-rules).
"""
