"""Training: the autoencoder, what it reconstructs, and the loop that fits it."""

from semhash.train.loop import History, TrainConfig

__all__ = ["History", "TrainConfig"]
