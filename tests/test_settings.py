from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.errors import ConfigError
from dataflywheel.evaluation.metrics import SUMMARY_METRICS
from dataflywheel.settings import (
    CandidateSettings,
    DataSplitSettings,
    LogStoreBackend,
    RecommendationSettings,
    Settings,
    load_settings,
)
from dataflywheel.settings_template import settings_template

REPO = Path(__file__).resolve().parents[1]


def test_defaults_need_no_file_and_no_services() -> None:
    s = load_settings()
    assert s.log_store.backend is LogStoreBackend.SQLITE
    assert s.sqlite_log_path == Path(".flywheel/logs.db")


def test_shipped_yaml_documents_every_key_with_the_default_values() -> None:
    shipped = load_settings(REPO / "config" / "flywheel.yaml")
    assert shipped.model_dump() == Settings().model_dump()
    # Every leaf key sits under a comment (one comment may describe a group of related keys).
    commented = False
    for line in (REPO / "config" / "flywheel.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            commented = True
        elif stripped.endswith(":"):  # a section header starts a new group
            commented = False
        elif stripped:
            assert commented, f"setting without a comment: {stripped}"


def every_field(model: type[BaseModel], prefix: str = "") -> dict[str, str | None]:
    """Every setting's dotted name and description, sections' and candidates' keys included."""
    out: dict[str, str | None] = {}
    for name, field in model.model_fields.items():
        out[prefix + name] = field.description
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out |= every_field(field.annotation, f"{prefix}{name}.")
    return out


def test_every_setting_has_a_description() -> None:
    fields = every_field(Settings) | every_field(CandidateSettings, "candidates[].")
    assert len(fields) > 100
    assert [name for name, text in fields.items() if not text or len(text) < 15] == []


def test_shipped_yaml_is_written_from_the_descriptions_and_defaults() -> None:
    """config/flywheel.yaml is the template: its comments are the descriptions, its values the defaults (one
    place for each); after changing one, run flywheel config --template > config/flywheel.yaml."""
    shipped = (REPO / "config" / "flywheel.yaml").read_text()
    assert shipped == settings_template()
    printed = CliRunner().invoke(app, ["config", "--template"])
    assert printed.exit_code == 0 and printed.output == shipped
    # a description shows up as its key's comment
    lines = shipped.splitlines()
    at = lines.index("  eval_size: 100")
    assert lines[at - 1] == f"  # {DataSplitSettings.model_fields['eval_size'].description}"


def test_the_recommendation_metric_description_names_every_metric() -> None:
    description = RecommendationSettings.model_fields["metric"].description or ""
    assert [m for m in SUMMARY_METRICS if m not in description] == []


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text("data_split:\n  eval_size: 7\n  val_ratio: 0.2\n")
    monkeypatch.setenv("FLYWHEEL_DATA_SPLIT__EVAL_SIZE", "9")
    s = load_settings(cfg)
    assert s.data_split.eval_size == 9
    assert s.data_split.val_ratio == 0.2


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text("home: /tmp/somewhere\n")
    monkeypatch.setenv("FLYWHEEL_CONFIG", str(cfg))
    assert load_settings().home == Path("/tmp/somewhere")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("data_split:\n  eval_size: 0\n", "data_split.eval_size"),
        ("data_split:\n  val_ratio: 1.5\n", "data_split.val_ratio"),
        ("data_split:\n  limit: 10\n  min_total_records: 50\n", "limit (10) cannot be less than min_total_records"),
        ("icl:\n  reserved_tokens: 9000\n", "reserved_tokens (9000) must be less than max_context_length"),
        ("icl:\n  min_examples: 5\n  max_examples: 2\n", "min_examples (5) cannot exceed max_examples (2)"),
        ("icl:\n  example_selection: nearest\n", "icl.example_selection"),
        ("log_store:\n  backend: postgres\n", "postgres_url is required"),
        ("log_store:\n  backend: mongo\n", "log_store.backend"),
        ("data_split:\n  eval_sise: 3\n", "data_split.eval_sise: Extra inputs are not permitted"),
        ("candidates:\n  - name: a\n  - name: a\n", "candidate name 'a' is configured twice"),
        ("judge:\n  enabled: true\n", "base_url and model are required"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("data_split: [\n", "not valid YAML"),
    ],
)
def test_bad_values_fail_with_the_setting_name(tmp_path: Path, yaml_text: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert expected in str(err.value)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_ICL__MAX_EXAMPLES", "many")
    with pytest.raises(ConfigError, match=r"icl.max_examples: .*\[env FLYWHEEL_ICL__MAX_EXAMPLES\]"):
        load_settings()


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "teacher:\n  price_per_1m_input_tokens: 0.88\n",
            "teacher: price_per_1m_output_tokens is required",
        ),
        ("judge:\n  price_per_1m_output_tokens: 1\n", "price_per_1m_input_tokens is required"),
        ("teacher:\n  price_per_1m_input_tokens: -1\n  price_per_1m_output_tokens: 1\n", "teacher.price_per_1m_input"),
        (
            "candidates:\n  - name: a\n    price_per_gpu_hour: 1\n    price_per_1m_input_tokens: 1\n"
            "    price_per_1m_output_tokens: 1\n",
            "set per-token prices or price_per_gpu_hour, not both",
        ),
        ("recommendation:\n  metric: vibes\n", "metric 'vibes' is unknown (known: function_name_accuracy"),
        ("recommendation:\n  min_ratio: 1.5\n", "recommendation.min_ratio"),
        ("recommendation:\n  min_ratio: 0\n", "recommendation.min_ratio"),
        ("cost:\n  currency: dollars\n", "cost.currency"),
    ],
)
def test_bad_prices_and_rules_fail_with_the_setting_name(tmp_path: Path, yaml_text: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert expected in str(err.value)


def test_prices_are_unknown_unless_set() -> None:
    s = load_settings(candidates=[{"name": "m"}])
    assert (s.teacher.price_per_1m_input_tokens, s.teacher.price_per_1m_output_tokens, s.teacher.name) == (None,) * 3
    c = s.candidates[0]
    assert (c.price_per_1m_input_tokens, c.price_per_1m_output_tokens, c.price_per_gpu_hour) == (None,) * 3
    assert (s.judge.price_per_1m_input_tokens, s.judge.price_per_1m_output_tokens) == (None, None)
    assert (s.recommendation.metric, s.recommendation.min_ratio, s.cost.currency) == (
        "function_name_accuracy",
        0.95,
        "USD",
    )


def test_mlflow_export_is_off_by_default_and_needs_its_extra_when_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the mlflow extra were not installed
    assert load_settings().mlflow.tracking_uri is None  # off: no package needed
    monkeypatch.setenv("FLYWHEEL_MLFLOW__TRACKING_URI", "http://mlflow.internal:5000")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "mlflow.tracking_uri: is set but the mlflow package is not installed" in message
    assert "pip install 'data-flywheel[mlflow]'" in message and "[env FLYWHEEL_MLFLOW__TRACKING_URI]" in message
    monkeypatch.setenv("FLYWHEEL_MLFLOW__TRACKING_URI", " ")
    assert load_settings().mlflow.tracking_uri is None  # blank is unset
