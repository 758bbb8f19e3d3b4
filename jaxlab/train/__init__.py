"""Training: state, optimizer, the compiled step and the loop."""
