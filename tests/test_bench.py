"""The benchmark runs and its JSON has the documented schema (timings are not asserted)."""

import json

import jax
import pytest

from softxent.bench import speed
from softxent.cli import main

KEYS = {"loss", "impl", "n", "v", "dtype", "median_s", "temp_bytes", "bound_fraction",
        "warm_bound_fraction"}


def test_run_case_schema():
    bandwidth = speed.Bandwidths(allocating=1e10, warm=2e10)
    results = speed.run_case("softmax_cross_entropy", 8, 16, "float32", 1, bandwidth)
    assert [r.impl for r in results] == list(speed.IMPLS)
    for result in results:
        row = speed.as_dict(result)
        assert set(row) == KEYS
        assert row["median_s"] > 0 and row["temp_bytes"] >= 0 and row["bound_fraction"] > 0
        # the warm copy is twice as fast here, so a step is half as near its bound
        assert row["warm_bound_fraction"] == pytest.approx(row["bound_fraction"] / 2)


def test_interleaved_medians_take_samples_in_turn():
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "ab"}
    medians = speed.interleaved_medians(fns, repeats=3, min_sample_s=0)
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
    # two warm-up calls each, then per round one untimed and one timed call of each
    assert order == ["a", "a", "b", "b"] + ["a", "a", "b", "b"] * 3


def test_every_impl_agrees_on_the_value():
    import numpy as np

    for loss in speed.LOSSES:
        z, t = speed.make_inputs(loss, 4, 9, "float32")
        # optax's integer-label loss has neither smoothing nor ignore_index
        impls = ("softxent", "naive") if loss == speed.INTEGER_LABELS else speed.IMPLS
        values = [float(np.mean(speed.loss_fn(loss, impl)(z, t))) for impl in impls]
        np.testing.assert_allclose(values, values[0], rtol=1e-5)


def test_cli_bad_repeats(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err


@pytest.fixture
def tiny_bench(monkeypatch):
    """`--quick` shrunk to one 4 x 8 float32 case per loss and implementation."""
    monkeypatch.setattr(speed, "QUICK_SHAPES", ((4, 8),))
    monkeypatch.setattr(speed, "DTYPES", ("float32",))
    monkeypatch.setattr(speed, "copy_bandwidth", lambda: 1e10)
    monkeypatch.setattr(speed, "warm_copy_bandwidth", lambda: 2e10)


def test_cli_json_quick(capsys, tiny_bench):
    assert main(["bench", "--quick", "--json", "--repeats", "1"]) == 0
    saved = json.loads(capsys.readouterr().out)
    rows = saved["rows"]
    assert saved["environment"]["command"] == "softxent bench --quick --json --repeats 1"
    assert saved["environment"]["copy_bandwidth_gb_s"] == 10.0
    assert len(rows) == len(speed.LOSSES) * len(speed.IMPLS)
    assert all(set(r) == KEYS for r in rows)


@jax.default_matmul_precision("highest")  # not TF32 on a GPU (see test_chunked.py)
def test_large_vocab_forms_agree_in_value_and_gradient():
    import numpy as np

    key_h, key_w, key_o = jax.random.split(jax.random.key(1), 3)
    hidden = jax.random.normal(key_h, (10, 6))
    weight = jax.random.normal(key_w, (6, 12))
    others = {
        "softmax_cross_entropy": jax.nn.softmax(jax.random.normal(key_o, (10, 12)), axis=-1),
        "distillation_loss": jax.random.normal(key_o, (10, 6)),
        speed.INTEGER_LABELS: jax.random.randint(key_o, (10,), 0, 12).at[::4].set(-100),
        "sparse_distillation_loss": speed.sparse_teacher(key_o, 10, 12),
        speed.GENERALIZED_JSD: jax.random.normal(key_o, (10, 6)),
        speed.REVERSE_KL: jax.random.normal(key_o, (10, 6)),
    }
    # One compilation for every loss and form: a jit per form costs most of the time.
    @jax.jit
    def every_form(hidden, weight, others):
        return {loss: [jax.value_and_grad(speed.large_vocab_fn(loss, impl, 4), argnums=(0, 1))(
                           hidden, weight, others[loss])
                       for impl in speed.LARGE_VOCAB_IMPLS]
                for loss in speed.LARGE_VOCAB_LOSSES}

    for loss, results in every_form(hidden, weight, others).items():
        for got in results[1:]:
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(results[0]), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=loss)


def test_cli_large_vocab_json(capsys):
    # Two losses (every one is compiled in test_large_vocab_forms_agree_in_value_and_gradient),
    # in the order given, each in every form.
    chosen = ("sparse_distillation_loss", speed.INTEGER_LABELS)
    assert main(["bench", "--large-vocab", "--shape", "8,4,16", "--chunk-size", "3",
                 "--repeats", "1", "--json", *(f"--loss={loss}" for loss in chosen)]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert set(saved["environment"]) >= {"date", "machine", "versions", "load_average"}
    rows = saved["rows"]
    assert [(r["loss"], r["impl"]) for r in rows] == [
        (loss, impl) for loss in chosen for impl in speed.LARGE_VOCAB_IMPLS]
    for row in rows:
        assert (row["n"], row["d"], row["v"], row["chunk_size"]) == (8, 4, 16, 3)
        assert row["median_s"] > 0 and row["peak_bytes"] >= row["temp_bytes"] >= 0


def test_cli_large_vocab_memory_only_compiles_without_running(capsys, monkeypatch):
    """--memory-only reads each compiled step's memory from the inputs' shapes: no input
    array is made and no step is run, so no time is reported."""
    monkeypatch.setattr(speed, "interleaved_medians", None)  # a call would fail
    assert main(["bench", "--large-vocab", "--memory-only", "--shape", "8,4,16",
                 "--loss", "sparse_distillation_loss", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["loss"], r["impl"]) for r in rows] == [
        ("sparse_distillation_loss", impl) for impl in speed.LARGE_VOCAB_IMPLS]
    for row in rows:
        assert row["median_s"] is None and row["peak_bytes"] >= row["temp_bytes"] >= 0
    table = speed.large_vocab_markdown(rows)
    assert table.count("not run") == len(rows)


def test_cli_large_vocab_bad_arguments(capsys):
    assert main(["bench", "--memory-only"]) == 2
    assert "--memory-only needs --large-vocab" in capsys.readouterr().err
    assert main(["bench", "--large-vocab", "--shape", "8,4"]) == 2
    assert "--shape must be three positive integers N,D,V, got '8,4'" in capsys.readouterr().err
    assert main(["bench", "--large-vocab", "--chunk-size", "0"]) == 2
    assert "--chunk-size must be >= 1, got 0" in capsys.readouterr().err
    assert main(["bench", "--shape", "8,4,16"]) == 2
    assert "--shape must be two positive integers N,V, got '8,4,16'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--shape", "8,16"]) == 2
    assert "give --quick or --shape, not both" in capsys.readouterr().err


def test_cli_one_shape(capsys, monkeypatch):
    monkeypatch.setattr(speed, "copy_bandwidth", lambda: 1e10)
    monkeypatch.setattr(speed, "warm_copy_bandwidth", lambda: 2e10)
    assert main(["bench", "--shape", "3,5", "--dtype", "float32", "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == len(speed.LOSSES) * len(speed.IMPLS)
    assert {(r["n"], r["v"], r["dtype"]) for r in rows} == {(3, 5, "float32")}


def test_cli_markdown_quick(capsys, tiny_bench):
    assert main(["bench", "--quick", "--markdown", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(speed.LOSSES)
    for line, loss in zip(lines[2:], speed.LOSSES, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:3] == [loss, "4x8", "float32"] and float(cells[6]) > 0


def test_markdown_puts_the_implementations_side_by_side():
    rows = [
        {"loss": "kl_divergence", "impl": impl, "n": 4, "v": 8, "dtype": "bfloat16",
         "median_s": seconds, "temp_bytes": temp, "bound_fraction": 0.25,
         "warm_bound_fraction": 0.05}
        for impl, seconds, temp in [("optax", 0.003, 2**21), ("softxent", 0.002, 2**20),
                                    ("naive", 0.004, 0)]
    ]
    assert speed.markdown(rows).splitlines()[2] == (
        "| kl_divergence | 4x8 | bfloat16 | 3.0 | 2.0 | 4.0 | 1.50 | 2 / 1 | 25 | 5 |")
    # a saved run without the warm copy's bound leaves that cell empty
    for row in rows:
        del row["warm_bound_fraction"]
    assert speed.markdown(rows).splitlines()[2].endswith("| 25 |  |")


def test_from_json_formats_a_saved_large_vocab_run(tmp_path, capsys):
    rows = [
        {"loss": "softmax_cross_entropy", "impl": impl, "n": 8, "d": 4, "v": 16,
         "dtype": "float32", "chunk_size": 3, "median_s": seconds, "temp_bytes": 2**21,
         "peak_bytes": 3 * 2**20}
        for impl, seconds in [("unfused", 0.02), ("linear", 0.04), ("linear_mean", 0.01)]
    ]
    saved = tmp_path / "lv.json"
    saved.write_text(json.dumps({"environment": {}, "rows": rows}))
    assert main(["bench", "--from-json", str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("| softmax_cross_entropy | float32 | 8x4x16 | 3 | unfused | 20.0 | 1.00 "
                        "| 2 | 3 |  |")  # no dense distillation row to relate the peak to
    assert "| linear | 40.0 | 0.50 |" in lines[3] and "| linear_mean | 10.0 | 2.00 |" in lines[4]


def test_from_json_bad_files(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert main(["bench", "--from-json", str(missing)]) == 2
    assert f"--from-json {missing}: no such file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"loss": "kl_divergence", "impl": "optax"}]))
    assert main(["bench", "--from-json", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert f"{wrong}: entry 0 has keys ['impl', 'loss'], expected" in err
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert main(["bench", "--from-json", str(empty)]) == 2
    assert "must hold a non-empty JSON list" in capsys.readouterr().err


def test_cli_times_any_registry_loss_and_a_users_own(capsys, tiny_bench, tmp_path):
    plugin = tmp_path / "bench_plugin.py"
    plugin.write_text(
        "import jax.numpy as jnp\n"
        "import softxent\n"
        "def bench_plugin_loss(logits, targets, *, axis=-1, where=None, reduction='none'):\n"
        "    return jnp.sum((logits - targets) ** 2, axis=axis)\n"
        "softxent.register_loss(bench_plugin_loss, input='logits', link='softmax',\n"
        "                       output='per_example', summary='squared logit distance')\n")
    try:
        assert main(["bench", "--plugin", str(plugin), "--quick", "--json", "--repeats", "1",
                     "--loss", "bench_plugin_loss", "--loss", "cross_entropy",
                     "--loss", "kl_divergence"]) == 0
    finally:
        import softxent

        softxent.unregister_loss("bench_plugin_loss")
    rows = json.loads(capsys.readouterr().out)["rows"]
    # losses optax lacks are timed alone; kl_divergence against optax and the naive form
    assert [(r["loss"], r["impl"]) for r in rows] == [
        ("bench_plugin_loss", "softxent"), ("cross_entropy", "softxent"),
        *(("kl_divergence", impl) for impl in speed.IMPLS)]
    assert all(r["median_s"] > 0 for r in rows)


def test_cli_unknown_loss_is_one_line(capsys):
    assert main(["bench", "--loss", "brier_scor"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softxent bench: --loss: unknown loss 'brier_scor'")
    assert len(err.strip().splitlines()) == 1
    assert main(["bench", "--large-vocab", "--loss", "brier_score"]) == 2
    err = capsys.readouterr().err
    assert "--loss with --large-vocab must be among" in err and "got 'brier_score'" in err
    assert len(err.strip().splitlines()) == 1
