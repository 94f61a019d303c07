"""Training: the engine, augmentation and checkpoints."""
