"""Differential privacy: DP-SGD inside the train step, and the (epsilon, delta) accounting."""
