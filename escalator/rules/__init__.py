"""Rule sets: the facts catalogue, the YAML loader and the durable-rules compiler."""
