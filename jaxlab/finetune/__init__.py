"""Fine-tuning: start from another run's weights (`init.from_workdir`), re-initialise or freeze
chosen parameters, per-pattern learning rates, and LoRA adapters through qwix."""
