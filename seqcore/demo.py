"""`seqcore demo`: train a character-level LSTM on a text and let it write.

The bundled text is Lewis Carroll's "Alice's Adventures in Wonderland" (1865, public domain;
the Millennium Fulcrum Edition 2.9 as distributed by Project Gutenberg). The model reads
`seq_len` characters and predicts each next one: Embedding -> LSTM -> Dense (logits), trained
with Adam on the cross-entropy of every step. Afterwards it generates text one character at a
time through model.stream(), at two sampling temperatures.
"""
import re
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from . import runtime
from .layers import LSTM, Dense, Embedding
from .losses import SparseCategoricalCrossentropy
from .model import Sequential
from .optimizers import Adam

BUNDLED_TEXT = Path(__file__).parent / "data" / "alice.txt"


def load_text(path=None):
    """The text as one line of prose: line breaks and runs of spaces become single spaces."""
    raw = Path(path or BUNDLED_TEXT).read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"\s+", " ", raw).strip()
    if len(text) < 1000:
        raise ValueError(f"text: need at least 1000 characters to learn from, got {len(text)}")
    return text


def make_batches(ids, seq_len, rng):
    """Non-overlapping windows of seq_len + 1 ids from a random offset: inputs and the next-
    character targets of every step."""
    start = int(rng.integers(0, seq_len))
    n = (len(ids) - start - 1) // seq_len
    windows = np.lib.stride_tricks.sliding_window_view(ids[start:], seq_len + 1)[::seq_len][:n]
    return windows[:, :-1], windows[:, 1:]


def sample(model, vocab, prompt, length, temperature, rng):
    """Feed `prompt` through a fresh stream, then draw `length` characters."""
    index = {ch: i for i, ch in enumerate(vocab)}
    stream = model.stream(batch_size=1)
    logits = None
    for ch in prompt:
        logits = stream.step(np.array([index.get(ch, 0)]))[0]
    out = []
    for _ in range(length):
        z = logits.astype(np.float64) / temperature
        p = np.exp(z - z.max())
        i = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[i])
        logits = stream.step(np.array([i]))[0]
    return "".join(out)


def run(text_path=None, epochs=20, hidden=256, seq_len=64, batch_size=64, seed=0,
        threads=None, verbose=1, out=sys.stdout):
    """Train, report the throughput, print samples; returns the trained model."""
    if threads:
        runtime.set_num_threads(threads)
    text = load_text(text_path)
    vocab = sorted(set(text))
    ids = np.searchsorted(np.array(vocab), np.array(list(text)))
    rng = np.random.default_rng(seed)
    model = Sequential([Embedding(len(vocab), 32, seed=seed),
                        LSTM(hidden, return_sequences=True, seed=seed + 1),
                        Dense(len(vocab), seed=seed + 2)], name="char_lstm")
    model.compile(SparseCategoricalCrossentropy(from_logits=True),
                  Adam(learning_rate=0.003), clipnorm=5.0)
    model.build((None, seq_len))
    source = ("the bundled text (Alice's Adventures in Wonderland)" if text_path is None
              else text_path)
    print(f"Training a character-level LSTM on {source}: {len(text):,} characters, "
          f"{len(vocab)} distinct; {runtime.get_num_threads()} threads.", file=out)
    if verbose:
        model.summary(print_fn=lambda s: print(s, file=out))
    x, y = make_batches(ids, seq_len, rng)
    t0 = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, seed=seed)
    train_time = time.perf_counter() - t0
    trained = x.size * len(history.history["loss"])
    loss = history.history["loss"][-1]
    print(f"\nTrained {len(history.history['loss'])} epochs ({trained:,} characters) in "
          f"{train_time:.1f} s: {trained / train_time:,.0f} characters/s; final loss {loss:.3f} "
          f"(perplexity {np.exp(loss):.1f} per character).", file=out)
    prompt = text[:seq_len] if text_path is not None else \
        "Alice was beginning to get very tired of sitting by her sister "
    for temperature in (0.5, 1.0):
        generated = sample(model, vocab, prompt, 300, temperature, rng)
        print(f"\nSampled at temperature {temperature} (after the prompt):", file=out)
        print(textwrap.fill(prompt + "| " + generated, width=88), file=out)
    return model
