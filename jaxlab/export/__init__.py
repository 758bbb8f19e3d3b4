"""`jaxlab export`: a trained model as files that run without jaxlab (StableHLO, SavedModel)."""
