"""Callbacks for Sequential.fit. Write your own by subclassing Callback and overriding the hooks
you need; `self.model` is the model being trained, `logs` a dict of the latest values
('loss', metrics, and 'val_'-prefixed ones after validation)."""
import math

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class History(Callback):
    """Collects every epoch's logs: history.history['loss'], ['val_loss'], ..."""

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _better(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return (lambda a, b, delta: a > b + delta) if mode == "max" else (
        lambda a, b, delta: a < b - delta)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs;
    with restore_best_weights, go back to the weights of the best epoch."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), int(patience)
        self.restore_best_weights = restore_best_weights
        self._better = _better(mode, monitor)

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: monitor {self.monitor!r} is not among the logs "
                           f"{sorted(logs or {})}")
        if self.best is None or self._better(value, self.best, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch to `filepath` (may contain {epoch} and any log name,
    e.g. 'model-{epoch:02d}-{val_loss:.3f}.seqcore'); with save_best_only, only when `monitor`
    improved."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self._better = _better(mode, monitor)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return
            if self.best is not None and not self._better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))
