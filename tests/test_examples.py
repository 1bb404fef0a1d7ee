"""The examples run and do what they say (small sizes, so the suite stays quick)."""
import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sequence_classifier_example(capsys):
    accuracy = _load("sequence_classifier").main(n=1500, T=10, epochs=8, verbose=0)
    assert accuracy > 0.9
    assert "identical predictions" in capsys.readouterr().out
