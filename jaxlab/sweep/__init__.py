"""`jaxlab sweep`: hyperparameter search over an experiment's config with Optuna."""
