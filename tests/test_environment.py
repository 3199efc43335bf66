"""The record of where and when a benchmark ran, which its --json output carries."""

import json
import platform
from importlib.metadata import version

from softxent.bench import environment


def test_environment_names_the_machine_versions_date_and_load():
    record = environment("softxent bench --quick")
    assert record["command"] == "softxent bench --quick"
    assert record["versions"]["python"] == platform.python_version()
    assert record["versions"]["jax"] == version("jax")
    assert record["versions"]["softxent"] == version("softxent")
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["date"].endswith("+00:00")  # UTC
    assert record["load_average"] is None or len(record["load_average"]) == 3
    assert record["devices"]
    assert json.loads(json.dumps(record)) == record


def test_a_missing_package_is_named_not_installed(monkeypatch):
    import softxent.bench._environment as env

    monkeypatch.setattr(env, "PACKAGES", ("jax", "no-such-package-anywhere"))
    assert environment()["versions"]["no-such-package-anywhere"] == "not installed"
    assert "command" not in environment()
