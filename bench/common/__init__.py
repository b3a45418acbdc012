"""What the benchmarks share: servers (a private redis-server, free ports, polling) and
statistics (correlations, ROC AUC, a confidence bound)."""
