"""Classify variable-length token sequences with a masked bidirectional GRU, save the model,
load it back, and run it as a stream.

    python examples/sequence_classifier.py

The task needs order and each row's true end: is the first token larger than the last one?
"""
import os
import tempfile

import numpy as np

import seqcore as sc


def make_data(n, T, rng):
    lengths = rng.integers(2, T + 1, n)
    x = rng.integers(1, 10, (n, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0          # 0 pads the end of each row
    y = (x[:, 0] > x[np.arange(n), lengths - 1]).astype(np.int64)
    return x, y


def main(n=4000, T=20, epochs=10, verbose=1):
    rng = np.random.default_rng(0)
    x, y = make_data(n, T, rng)
    model = sc.Sequential([
        sc.Embedding(10, 16, mask_zero=True, seed=0),          # id 0 -> masked step
        sc.Bidirectional(sc.GRU(32, seed=1)),                  # backward half starts at the end
        sc.Dense(2, seed=2),
    ])
    model.compile(sc.losses.SparseCategoricalCrossentropy(from_logits=True), "adam",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.2,
                        verbose=verbose, seed=0,
                        callbacks=[sc.callbacks.EarlyStopping(monitor="val_accuracy",
                                                              patience=2)])
    if verbose:
        model.summary()
    x_test, y_test = make_data(1000, T, rng)
    loss, accuracy = model.evaluate(x_test, y_test)
    print(f"test accuracy {accuracy:.3f} after {len(history.history['loss'])} epochs")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "classifier.seqcore")
        model.save(path)
        loaded = sc.load_model(path)
    assert np.array_equal(loaded.predict(x_test), model.predict(x_test))
    print("saved and reloaded: identical predictions")

    # a unidirectional model can also run one token at a time (a Bidirectional one cannot:
    # its backward half needs the whole sequence)
    tagger = sc.Sequential([sc.Embedding(10, 8, mask_zero=True, seed=3),
                            sc.LSTM(16, return_sequences=True, seed=4), sc.Dense(2, seed=5)])
    tagger.build((None, T))
    stream = tagger.stream(batch_size=1)
    steps = np.stack([stream.step(x_test[:1, t]) for t in range(T)], axis=1)
    assert np.allclose(steps, tagger.predict(x_test[:1]), atol=1e-6)
    print("streamed one token at a time: same outputs as the whole sequence")
    return accuracy


if __name__ == "__main__":
    main()
