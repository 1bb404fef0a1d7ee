"""TensorFlow / Keras as a peer of bench/kernels.py, in a worker process of its own.

TensorFlow fixes its thread pools when its runtime starts and cannot change them later, while
the bench runs every thread count in one process; so each thread count gets a worker process
(multiprocessing, spawn) that starts TensorFlow with that many intra-op threads (one inter-op
thread) and the Keras backend set to "tensorflow". The parent sends it a row (cell, mode,
x, weights); the worker builds a keras.layers.LSTM / GRU (GRU reset_after=True, as seqcore's
and ONNX Runtime's linear_before_reset=1) with those weights (Keras's layout is seqcore's),
wraps the call in a tf.function and warms it up. Then the parent asks for blocks of timed
calls (TFPeer.block) between its own libraries' blocks, so TensorFlow is interleaved with
them like the others (kernels.time_group). Inference: layer(x, training=False) returning
every step's output; training: forward and the gradients of sum(outputs) with respect to x
and the weights (as the torch runner's backward of ones). x is batch-major for Keras (it has
no time-major option); the transpose is done once, outside the timing.
"""
import multiprocessing
import os

from timing import timed_block


def available():
    """TensorFlow's version if it can be imported (checked in a child process, so that this
    process never starts TensorFlow's runtime), else None."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_version, args=(child,), daemon=True)
    proc.start()
    version = parent.recv() if parent.poll(120) else None
    proc.join(5)
    return version


def _quiet_env():
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _version(conn):
    _quiet_env()
    try:
        import tensorflow as tf
        conn.send(tf.__version__)
    except Exception:                 # not installed, or does not start here
        conn.send(None)


def _worker(conn, threads):
    _quiet_env()
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    fn = None
    while True:
        msg = conn.recv()
        if msg[0] == "quit":
            return
        if msg[0] == "setup":
            _, cell, mode, x, W, U, b = msg
            H = U.shape[0]
            layer = (keras.layers.LSTM(H, return_sequences=True) if cell == "lstm" else
                     keras.layers.GRU(H, return_sequences=True, reset_after=True))
            xb = tf.constant(np.ascontiguousarray(x.transpose(1, 0, 2)))   # (B, T, I)
            layer.build(xb.shape)
            layer.set_weights([W, U, b])
            if mode == "infer":
                call = tf.function(lambda inp: layer(inp, training=False))
            else:
                @tf.function
                def call(inp):
                    with tf.GradientTape() as tape:
                        tape.watch(inp)
                        loss = tf.reduce_sum(layer(inp, training=True))
                    return tape.gradient(loss, [inp] + layer.trainable_weights)

            def fn():
                out = call(xb)
                # wait for the result: tf.function returns once the graph has run
                (out[0] if isinstance(out, list) else out).numpy()
            fn()
            fn()
            conn.send("ready")
        elif msg[0] == "block":
            conn.send(timed_block(fn, msg[1]))


class TFPeer:
    """A worker process running TensorFlow at `threads` intra-op threads (see the module
    docstring). setup() gives it a row; block(seconds) runs a block of timed calls there and
    returns their times; close() ends it."""

    def __init__(self, threads):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, threads), daemon=True)
        self._proc.start()

    def setup(self, cell, mode, x, W, U, b):
        self._conn.send(("setup", cell, mode, x, W, U, b))
        reply = self._conn.recv()
        if reply != "ready":
            raise RuntimeError(f"TensorFlow worker: {reply!r}")
        return self

    def block(self, seconds):
        self._conn.send(("block", seconds))
        return self._conn.recv()

    @property
    def pid(self):
        """The worker's process id (kernels.time_rounds waits for it to go quiet)."""
        return self._proc.pid

    def close(self):
        self._conn.send(("quit",))
        self._proc.join(10)
