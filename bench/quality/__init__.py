"""How the scores and decisions agree with people on labelled conversations, and the
offline fits that set the weights and thresholds of the default policy."""
