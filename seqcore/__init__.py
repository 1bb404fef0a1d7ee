"""seqcore: LSTM, GRU and simple RNN forward and backward on the CPU, fast."""
__version__ = "0.1.0"

from . import callbacks, interop, losses, ops, optimizers, reference
from .io import ModelFileError, load_model
from .layers import (GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN,
                     TimeDistributed)
from .model import Sequential
from .runtime import config, get_num_threads, set_num_threads, show_config

__all__ = ["__version__", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "TimeDistributed",
           "Dense", "Embedding", "Dropout", "Sequential", "load_model", "ModelFileError",
           "callbacks", "interop", "losses", "optimizers", "ops", "reference", "config",
           "get_num_threads", "set_num_threads", "show_config"]
