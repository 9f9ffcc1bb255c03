"""WarmStartTrainer: TFX's Trainer with the warm-start parameter (trainer/warm_start.py)."""
