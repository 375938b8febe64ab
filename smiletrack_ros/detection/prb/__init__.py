"""PRB-FPN (Parallel Residual Bi-Fusion feature pyramid) detector in torch."""
