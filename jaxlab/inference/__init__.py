"""Using a trained run: loading it, the forward pass and compiled programs, evaluation,
prediction, sampling, quantized variables and attributions. Imports nothing from training."""
