"""The benchmark runs and its JSON has the documented schema (timings are not asserted)."""

import json

from softxent import _bench
from softxent.cli import main

KEYS = {"loss", "impl", "n", "v", "dtype", "median_s", "temp_bytes", "bound_fraction"}


def test_run_case_schema():
    result = _bench.run_case("softmax_cross_entropy", "softxent", 8, 16, "float32", 1, 1e10)
    row = _bench.as_dict(result)
    assert set(row) == KEYS
    assert row["median_s"] > 0 and row["temp_bytes"] >= 0 and row["bound_fraction"] > 0


def test_every_impl_agrees_on_the_value():
    import numpy as np

    for loss in _bench.LOSSES:
        z, t = _bench.make_inputs(loss, 4, 9, "float32")
        values = [float(np.mean(_bench.loss_fn(loss, impl)(z, t))) for impl in _bench.IMPLS]
        np.testing.assert_allclose(values, values[0], rtol=1e-5)


def test_cli_bad_repeats(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err


def test_cli_json_quick(capsys, monkeypatch):
    monkeypatch.setattr(_bench, "QUICK_SHAPES", ((4, 8),))
    monkeypatch.setattr(_bench, "DTYPES", ("float32",))
    monkeypatch.setattr(_bench, "copy_bandwidth", lambda: 1e10)
    assert main(["bench", "--quick", "--json", "--repeats", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(_bench.LOSSES) * len(_bench.IMPLS)
    assert all(set(r) == KEYS for r in rows)
