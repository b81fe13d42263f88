"""dlzoo: a deep-learning course as one reproducible DVC + Hydra + Lightning + MLflow pipeline."""

__version__ = "0.1.0"
