"""ptjf: pre-training joint fine-tuning for imbalanced multilingual training."""

__version__ = "0.1.0"
