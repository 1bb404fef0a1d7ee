"""Sequential: a stack of layers with Keras's compile / fit / predict / evaluate / summary /
save, and a streaming step API.

Inputs are batch-first: (B, T, features) floats, or (B, T) integer ids when the first layer is
an Embedding. `lengths` (B,) or `mask` (B, T) mark the valid steps of padded sequences; masks
flow from layer to layer as in Keras (Embedding(mask_zero=True) creates one) and the loss of a
sequence output averages over the valid steps only.
"""
import numpy as np

from . import callbacks as callbacks_module
from . import losses, ops, optimizers, runtime
from . import metrics as metrics_module
from .layers import LAYERS, deserialize, serialize
from .layers.base import Layer, sequence_mask, whole_number
from .layers.recurrent import _Recurrent
from .layers.core import Embedding
from .layers.wrappers import Bidirectional, TimeDistributed
from .progress import ProgressBar

__all__ = ["Sequential", "Stream"]


def _batches(n, batch_size, order):
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _take(a, idx):
    return None if a is None else np.asarray(a)[idx]


class Sequential:
    """Layers applied one after the other; each must return a single array (no
    return_state)."""

    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self.layers = []
        self.stop_training = False
        self._compiled = None
        self.input_shape = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers: expected seqcore layers, got {type(layer).__name__}")
        if getattr(layer, "return_state", False) or getattr(layer, "merge_mode", "") is None:
            raise ValueError(f"{layer.name}: a layer in a Sequential must return one array "
                             "(return_state=False, merge_mode not None)")
        if getattr(layer, "time_major", False):
            raise ValueError(f"{layer.name}: Sequential works batch-first (time_major=False)")
        self.layers.append(layer)

    # ---- building and structure
    @property
    def built(self):
        return (bool(self.layers) and self.input_shape is not None
                and all(layer.built for layer in self.layers))

    def build(self, input_shape):
        """Create every layer's weights for inputs of `input_shape` (batch axis may be None)."""
        if not self.layers:
            raise ValueError("Sequential: no layers")
        shape = tuple(input_shape)
        for layer in self.layers:
            layer._ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        self.input_shape = tuple(input_shape)

    def _output_shapes(self):
        shape, out = self.input_shape, []
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            out.append(shape)
        return out

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def gradients(self):
        return [g for layer in self.layers for g in (layer.gradients or [])]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"weights: expected {expected} arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """Layers, output shapes and parameter counts, as Keras prints them."""
        if not self.built:
            raise RuntimeError("summary: build the model first (call it, fit it, or "
                               "model.build(input_shape))")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self.layers, self._output_shapes())]
        widths = [max(len(h), *(len(r[i]) for r in rows)) + 2
                  for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "".join(h.ljust(w) for h, w in zip(("Layer (type)", "Output Shape", "Param #"),
                                                  widths))
        print_fn(f'Model: "{self.name}"')
        print_fn("=" * len(line))
        print_fn(line)
        print_fn("=" * len(line))
        for r in rows:
            print_fn("".join(c.ljust(w) for c, w in zip(r, widths)))
        print_fn("=" * len(line))
        print_fn(f"Total params: {self.count_params():,}")

    # ---- running
    def __call__(self, x, mask=None, lengths=None, training=False):
        """The model's output for a batch; keeps what backward needs when training."""
        y, _ = self._forward(x, mask, lengths, training)
        return y

    def _forward(self, x, mask, lengths, training):
        if not self.layers:
            raise ValueError("Sequential: no layers")
        x = np.asarray(x)
        if x.ndim < 2 and (mask is not None or lengths is not None):
            raise ValueError(f"x: expected (B, T, ...) inputs with a mask or lengths, got "
                             f"shape {x.shape}")
        if mask is not None or lengths is not None:
            mask = sequence_mask(mask, lengths, x.shape[0], x.shape[1])
        if not self.built or self.input_shape is None:
            self.build((None,) + x.shape[1:])
        for layer in self.layers:
            out = layer(x, mask=mask, training=training)
            mask = layer.compute_mask(x, mask)
            x = out
        return x, mask

    def backward(self, d_out):
        """Gradients of the last training call: fills every layer's gradients, returns d/dx
        (None when the first layer takes ids)."""
        d = d_out
        for layer in reversed(self.layers):
            d = layer.backward(d)
            if d is None:
                break
        return d

    def reset_states(self):
        """Forget the state stateful layers carry between calls."""
        for layer in self.layers:
            if isinstance(layer, _Recurrent):
                layer.reset_states()

    # ---- training
    def compile(self, loss, optimizer="adam", metrics=None, clipnorm=None, clipvalue=None):
        for arg, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if v is not None and not float(v) > 0:
                raise ValueError(f"{arg}: expected a positive number or None, got {v!r}")
        loss = losses.get(loss)
        self._compiled = dict(
            loss=loss, optimizer=optimizers.get(optimizer),
            metrics=[metrics_module.get(m, loss) for m in (metrics or [])],
            clipnorm=clipnorm, clipvalue=clipvalue)

    def _need_compiled(self):
        if self._compiled is None:
            raise RuntimeError("compile(loss, optimizer) the model first")
        return self._compiled

    @staticmethod
    def _loss_weights(y_pred, mask):
        """Weights of the loss entries: the mask for sequence outputs that carry one."""
        return mask.astype(y_pred.dtype) if mask is not None and y_pred.ndim == 3 else None

    def train_on_batch(self, x, y, lengths=None, mask=None):
        """One optimizer step on one batch; returns the logs (loss and metrics)."""
        c = self._need_compiled()
        y_pred, out_mask = self._forward(x, mask, lengths, True)
        w = self._loss_weights(y_pred, out_mask)
        value, d = c["loss"](y, y_pred, w)
        if not np.isfinite(value):
            raise FloatingPointError(f"loss is {value}: training diverged (try a lower "
                                     "learning rate or clipnorm)")
        self.backward(d)
        grads = optimizers.clip_gradients(self.gradients, c["clipnorm"], c["clipvalue"])
        c["optimizer"].apply(self.weights, grads)
        logs = {"loss": value}
        for name, fn in c["metrics"]:
            logs[name] = fn(y, y_pred, w)
        return logs

    def _check_data(self, x, y, lengths):
        n = len(x)
        if y is not None and len(y) != n:
            raise ValueError(f"y: expected {n} samples (as x), got {len(y)}")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"lengths: expected {n} entries (as x), got {len(lengths)}")
        return n

    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, lengths=None, seed=None):
        """Train for `epochs` passes over (x, y). validation_data: (x, y) or (x, y, lengths);
        validation_split: the last fraction of x held out instead. Returns a History."""
        c = self._need_compiled()
        batch_size = whole_number("batch_size", batch_size)
        epochs = whole_number("epochs", epochs, minimum=0)
        x, y = np.asarray(x), np.asarray(y)
        n = self._check_data(x, y, lengths)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split: expected a fraction in [0, 1), got "
                             f"{validation_split!r}")
        if validation_split and validation_data is None:
            cut = n - int(round(n * validation_split))
            validation_data = (x[cut:], y[cut:]) + ((lengths[cut:],) if lengths is not None
                                                    else ())
            x, y, n = x[:cut], y[:cut], cut
            lengths = None if lengths is None else np.asarray(lengths)[:cut]
        if n == 0:
            raise ValueError("x: no training samples")
        history = callbacks_module.History()
        cbs = [history] + list(callbacks or [])
        for cb in cbs:
            cb.set_model(self)
        rng = np.random.default_rng(seed)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        steps = -(-n // batch_size)
        for epoch in range(epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else np.arange(n)
            bar = ProgressBar(steps, prefix=f"Epoch {epoch + 1}/{epochs} ") if verbose else None
            sums, seen = {}, 0
            for i, idx in enumerate(_batches(n, batch_size, order)):
                for cb in cbs:
                    cb.on_batch_begin(i)
                logs = self.train_on_batch(x[idx], y[idx], _take(lengths, idx))
                seen += len(idx)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
                means = {k: v / seen for k, v in sums.items()}
                for cb in cbs:
                    cb.on_batch_end(i, logs)
                if bar:
                    bar.update(i + 1, seen, means, final=False)
            logs = dict(means)
            if validation_data is not None:
                val = self.evaluate(*validation_data[:2], batch_size=batch_size,
                                    lengths=validation_data[2] if len(validation_data) > 2
                                    else None, return_dict=True)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if bar:
                bar.update(steps, seen, logs, final=True)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        return history

    def predict(self, x, batch_size=32, lengths=None, mask=None):
        """Outputs for x, computed in batches by the inference kernels."""
        batch_size = whole_number("batch_size", batch_size)
        x = np.asarray(x)
        n = self._check_data(x, None, lengths)
        if mask is not None and lengths is not None:
            raise ValueError("mask and lengths: give one of them, not both")
        with _WeightsPacked(self.layers):
            outs = [self._forward(x[i:i + batch_size], _take(mask, slice(i, i + batch_size)),
                                  _take(lengths, slice(i, i + batch_size)), False)[0]
                    for i in range(0, n, batch_size)]
        if not outs:
            raise ValueError("x: no samples")
        return np.concatenate(outs)

    def evaluate(self, x, y, batch_size=32, lengths=None, return_dict=False):
        """Loss (and metrics) over (x, y): a float, a list [loss, metrics...], or a dict."""
        c = self._need_compiled()
        batch_size = whole_number("batch_size", batch_size)
        x, y = np.asarray(x), np.asarray(y)
        n = self._check_data(x, y, lengths)
        if n == 0:
            raise ValueError("x: no samples")
        sums, total = {}, 0.0
        with _WeightsPacked(self.layers):
            for i in range(0, n, batch_size):
                sl = slice(i, i + batch_size)
                y_pred, out_mask = self._forward(x[sl], None, _take(lengths, sl), False)
                w = self._loss_weights(y_pred, out_mask)
                # each batch weighs by its number of loss entries, so the result is the mean
                # over the whole set
                entries = float(w.sum()) if w is not None else float(len(y_pred))
                vals = {"loss": c["loss"](y[sl], y_pred, w)[0]}
                for name, fn in c["metrics"]:
                    vals[name] = fn(y[sl], y_pred, w)
                for k, v in vals.items():
                    sums[k] = sums.get(k, 0.0) + v * entries
                total += entries
        result = {k: v / total if total else 0.0 for k, v in sums.items()}
        if return_dict:
            return result
        return result["loss"] if len(result) == 1 else list(result.values())

    # ---- streaming
    def stream(self, batch_size=1):
        """A Stream: feed one time step at a time, state carried between steps."""
        return Stream(self, batch_size)

    # ---- saving
    def get_config(self):
        if not self.built:
            raise RuntimeError("save: build the model first")
        return {"class_name": "Sequential", "name": self.name,
                "input_shape": [None if d is None else int(d) for d in self.input_shape],
                "layers": [serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        if config.get("class_name") != "Sequential":
            raise ValueError(f"model class {config.get('class_name')!r}: only Sequential "
                             f"models (of layers {sorted(LAYERS)}) load")
        model = cls([deserialize(spec) for spec in config["layers"]], name=config["name"])
        model.build(tuple(config["input_shape"]))
        return model

    def save(self, path):
        """Write the architecture and weights to `path` (seqcore.io: no pickle, atomic)."""
        from .io import save_model
        save_model(self, path)


_STEP_RECURRENT, _STEP_LAYER = 0, 1      # Stream._plan: the kinds of layer at a step


class _WeightsPacked:
    """Within it, the recurrent layers among `layers` (and those a Bidirectional wraps) read W
    and U packed once, not packed again at every call: for predict and evaluate, whose batches
    all see the same weights. Zen 3, 1 thread, two LSTM layers of 256 on T = 20: predict with
    batch_size=1 0.58x the time, batch_size=32 0.95x (T = 100: 0.99x)."""

    def __init__(self, layers):
        self.layers = [inner for layer in layers
                       for inner in (layer._inner() if isinstance(layer, Bidirectional)
                                     else (layer,))
                       if isinstance(inner, _Recurrent)]

    def __enter__(self):
        try:
            for layer in self.layers:
                layer._pack_weights()
        except BaseException:
            self.__exit__()          # no layer left holding packed weights
            raise
        return self

    def __exit__(self, *exc_info):
        for layer in self.layers:
            layer._unpack_weights()
        return False


class Stream:
    """Step-by-step inference: `y_t = stream.step(x_t)` for x_t (B, features) or (B,) ids;
    equal to the model's output at step t of the whole sequence (for a model ending in
    return_sequences=False: its output had the sequence ended at t). State is carried across
    steps until reset(). The stream uses the weights as they were at creation or the last
    reset(); each recurrent layer runs through a seqcore.ops.Stepper (weights packed once)."""

    def __init__(self, model, batch_size=1):
        if not model.built:
            raise RuntimeError("stream: build the model first")
        for layer in model.layers:
            if isinstance(layer, Bidirectional) or getattr(layer, "go_backwards", False):
                raise ValueError(f"{layer.name}: a backward-running layer needs the whole "
                                 "sequence and cannot stream")
        self.model, self.batch_size = model, whole_number("batch_size", batch_size)
        self.reset()

    def reset(self):
        """Back to the zero state (and to the model's current weights)."""
        # what each layer does at a step, worked out once: a recurrent layer's stepper and
        # whether it returns sequences, the layer a TimeDistributed wraps, an Embedding with
        # mask_zero, any other layer
        self._plan = []
        for layer in self.model.layers:
            if isinstance(layer, _Recurrent):
                self._plan.append((_STEP_RECURRENT, layer.stepper(self.batch_size),
                                   layer.return_sequences))
            elif isinstance(layer, TimeDistributed):
                self._plan.append((_STEP_LAYER, layer.layer, False))
            else:
                self._plan.append((_STEP_LAYER, layer,
                                   isinstance(layer, Embedding) and layer.mask_zero))
        # a model of recurrent layers that all return sequences, the usual streaming model:
        # a step is their steppers' steps in turn (each checks its x_t), nothing else; and
        # when they chain as they are (one dtype, each one's input the previous one's
        # output), one kernel call for all of them (seqcore._kernels.step.step_chain)
        self._chain = ([part for _, part, _ in self._plan]
                       if self._plan and all(kind == _STEP_RECURRENT and flag
                                             for kind, _, flag in self._plan)
                       else None)
        self._kernels = None if self._chain is None else ops.chained_kernels(self._chain)
        self._threads_matter = self._chain is not None and any(
            s.threads_matter for s in self._chain)

    def step(self, x_t):
        if self._kernels is not None:
            y = ops.step_chain(self._kernels, x_t,
                               runtime.get_num_threads() if self._threads_matter else 1)
            if y is not None:
                return y
        if self._chain is not None:       # x_t to convert, or to reject
            for stepper in self._chain:
                x_t = stepper.step(x_t)
            return x_t
        x = x_t if type(x_t) is np.ndarray else np.asarray(x_t)
        if x.ndim == 0 or x.shape[0] != self.batch_size:    # (a few hundred ns count here)
            raise ValueError(f"x_t: expected a first axis of batch_size={self.batch_size}, got "
                             f"shape {x.shape}")
        valid = None                 # rows whose step is masked (Embedding(mask_zero) id 0)
        for kind, part, flag in self._plan:
            if kind == _STEP_RECURRENT:
                y = part.step(x, valid)
                if flag:             # return_sequences: the step's output
                    x = y
                else:                # else the state (which a masked step keeps)
                    x, valid = part.states[0].copy(), None
            else:
                out = part(x, training=False)
                if flag:             # an Embedding(mask_zero): id 0 masks the row's step
                    valid = x != 0
                x = out
        return x
