"""Saving and loading models without pickle: loading an untrusted file cannot run code.

A model file is a zip archive holding `model.json` (format, version, the architecture as
layer configs, and for each weight array its name, shape, dtype and SHA-256) and one `.npy`
file per weight array, read with allow_pickle=False. Loading checks the zip's CRCs, the
digests, shapes and dtypes, so a truncated or altered file raises ModelFileError instead of
loading wrong numbers. Writes go to a temporary file in the same directory, renamed over the
target only once complete.
"""
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["save_model", "load_model", "ModelFileError"]

FORMAT = "seqcore.model"
VERSION = 1


class ModelFileError(ValueError):
    """The file is not a readable seqcore model (truncated, altered, or another format)."""


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_model(model, path):
    """Write `model` (a built Sequential) to `path` atomically."""
    path = os.fspath(path)
    weights = model.get_weights()
    manifest = {
        "format": FORMAT, "version": VERSION, "model": model.get_config(),
        "weights": [{"file": f"weights/{i:04d}.npy", "shape": list(w.shape),
                     "dtype": w.dtype.name, "sha256": _digest(w)}
                    for i, w in enumerate(weights)],
    }
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".seqcore-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("model.json", json.dumps(manifest, indent=1))
                for entry, w in zip(manifest["weights"], weights):
                    buf = io.BytesIO()
                    np.lib.format.write_array(buf, w, allow_pickle=False)
                    z.writestr(entry["file"], buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_manifest(z, path):
    try:
        manifest = json.loads(z.read("model.json"))
    except KeyError:
        raise ModelFileError(f"{path}: no model.json inside: not a seqcore model file") from None
    except ValueError as e:
        raise ModelFileError(f"{path}: model.json is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a seqcore model file (format "
                             f"{manifest.get('format') if isinstance(manifest, dict) else '?'!r})")
    if manifest.get("version") != VERSION:
        raise ModelFileError(f"{path}: model file version {manifest.get('version')!r}; this "
                             f"seqcore reads version {VERSION}")
    if not isinstance(manifest.get("weights"), list) or not isinstance(manifest.get("model"),
                                                                       dict):
        raise ModelFileError(f"{path}: model.json lacks 'model' or 'weights'")
    return manifest


def _read_weight(z, entry, path):
    try:
        name, shape, dtype, digest = (entry["file"], tuple(entry["shape"]), entry["dtype"],
                                      entry["sha256"])
        data = z.read(name)
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: weight entry {entry!r:.120} is incomplete or missing "
                             f"({e})") from None
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise ModelFileError(f"{path}: {name} is not a plain .npy array ({e})") from None
    if array.shape != shape or array.dtype.name != dtype or _digest(array) != digest:
        raise ModelFileError(f"{path}: {name} does not match model.json (shape, dtype or "
                             "SHA-256 differ): the file was altered")
    return array


def load_model(path):
    """The Sequential model saved at `path` by save_model / model.save."""
    from .model import Sequential
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as z:
            manifest = _read_manifest(z, path)
            weights = [_read_weight(z, entry, path) for entry in manifest["weights"]]
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path}: not a complete seqcore model file ({e})") from None
    except (EOFError, zlib.error) as e:
        raise ModelFileError(f"{path}: the file is truncated or corrupt ({e})") from None
    config = manifest["model"]
    try:
        model = Sequential.from_config(config)
        model.set_weights(weights)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ModelFileError(f"{path}: the architecture in model.json does not load: {e}"
                             ) from None
    return model
