"""seqcore: LSTM, GRU and simple RNN forward and backward on the CPU, fast."""
__version__ = "0.1.0"

from . import ops, reference
from .runtime import config, get_num_threads, set_num_threads, show_config

__all__ = ["__version__", "ops", "reference", "config", "get_num_threads", "set_num_threads",
           "show_config"]
