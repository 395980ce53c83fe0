"""Preflight: every deterministic input error found in one pass, each message naming the column or parameter
and the fix; a good table passes with its warnings (rows without a label, all-null columns)."""

import pandas as pd
import pytest

from kfpc.components.preflight import core


def _table(tmp_path, frame: pd.DataFrame, name: str = "t.csv") -> str:
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def frame():
    n = 200
    return pd.DataFrame({
        "Species": ["a" if i % 3 else "b" for i in range(n)],
        "x": [i * 0.5 for i in range(n)],
        "count": [i % 7 for i in range(n)],
        "price": [float(i) ** 1.5 for i in range(n)],
        "empty": [None] * n,
    })


@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_a_good_table_passes_and_reports_what_the_run_will_use(tmp_path, frame, name):
    frame.loc[[3, 10, 17], "Species"] = None
    result = core.check(_table(tmp_path, frame, name), label="Species", exclude_columns=["count"])
    assert result.task == "binary" and result.rows == 200 and result.labelled_rows == 197
    assert result.classes == {"a": 131, "b": 66}
    assert result.drop_columns == ["count", "empty"]  # excluded + null in every row, in column order
    assert any("3 of 200 rows have no label 'Species'" in w for w in result.warnings)
    assert any("'empty'" in w for w in result.warnings)
    assert core.check(_table(tmp_path, frame, name), label="price").task == "regression"
    assert core.check(_table(tmp_path, frame, name), label="count").task == "multiclass"


def test_a_misspelt_label_names_the_columns_and_the_likely_one(tmp_path, frame):
    with pytest.raises(core.PreflightError) as err:
        core.check(_table(tmp_path, frame), label="species")
    assert "label 'species' is not a column" in str(err.value) and "did you mean 'Species'?" in str(err.value)
    assert "'x'" in str(err.value)
    with pytest.raises(core.PreflightError, match="label is empty"):
        core.check(_table(tmp_path, frame), label="")


def test_one_class_too_few_labelled_rows_and_a_constant_target_are_errors(tmp_path, frame):
    one_class = frame.assign(Species="a")
    with pytest.raises(core.PreflightError, match="label 'Species' has a single class \\('a'\\)"):
        core.check(_table(tmp_path, one_class), label="Species")
    few = frame.assign(Species=[("a" if i % 2 else "b") if i < 10 else None for i in range(200)])
    with pytest.raises(core.PreflightError, match="only 10 rows have a label 'Species'; at least 20"):
        core.check(_table(tmp_path, few), label="Species")
    with pytest.raises(core.PreflightError, match="label 'x' has the single value 1.0"):
        core.check(_table(tmp_path, frame.assign(x=1.0)), label="x", task="regression")


def test_task_and_label_must_agree(tmp_path, frame):
    with pytest.raises(core.PreflightError, match="task='regression' needs a numeric label; 'Species' is text"):
        core.check(_table(tmp_path, frame), label="Species", task="regression")
    with pytest.raises(core.PreflightError, match="task='binary' but label 'count' has 7 classes"):
        core.check(_table(tmp_path, frame), label="count", task="binary")
    with pytest.raises(core.PreflightError, match="holds real numbers"):
        core.check(_table(tmp_path, frame), label="price", task="multiclass")


def test_excluded_and_numeric_columns_must_exist_and_not_be_the_label(tmp_path, frame):
    with pytest.raises(core.PreflightError) as err:
        core.check(_table(tmp_path, frame), label="Species", exclude_columns=["X", "Species"],
                   numeric_columns=["prise"], key_column="id")
    text = str(err.value)
    assert "4 problems" in text
    assert "exclude_columns: 'X' is not a column (did you mean 'x'?)" in text
    assert "exclude_columns: 'Species' is the label" in text
    assert "numeric_columns: 'prise' is not a column (did you mean 'price'?)" in text
    assert "key_column 'id' is not a column" in text
    with pytest.raises(core.PreflightError, match="no feature column is left"):
        core.check(_table(tmp_path, frame), label="Species", exclude_columns=["x", "count", "price"])


def test_parameters_are_checked_without_reading_data_and_reported_with_the_data_problems(tmp_path, frame):
    problems = core.check_parameters(
        task="classification", push_mode="dryrun", model_name="My_Model", canary_traffic_percent=150,
        promote=True, eval_fraction=1.5, hidden_units=[0], dropout=1.0, learning_rate=-1, epochs=0, patience=-1,
        min_accuracy=2, max_regression=-0.1, eval_config_json='{"thresholds": [{"metric": "accuracy"}]}',
    )
    text = "\n".join(problems)
    for expected in ("task='classification' is not a task; use one of auto, binary, multiclass, regression",
                     "push_mode='dryrun' is not a push mode; use one of dry_run, local, cluster",
                     "model_name: name 'My_Model' is not a valid InferenceService name",
                     "canary_traffic_percent=150 must be 0 (no canary) to 99",
                     "eval_fraction=1.5 must be between 0 and 1", "hidden_units must be a non-empty list",
                     "min_accuracy=2 must be in [0, 1]", "max_regression=-0.1 must be >= 0",
                     "eval_config_json: thresholds[0] (accuracy) needs a value_threshold, a change_threshold or a skill_threshold"):
        assert expected in text, expected
    assert core.check_parameters(promote=True, canary_traffic_percent=0) == [
        "promote=True needs a canary: set canary_traffic_percent to 1..99, or promote=False"]
    assert core.check_parameters(push_mode="local", model_name="house-prices", namespace="team-a") == []
    with pytest.raises(core.PreflightError) as err:
        core.check(_table(tmp_path, frame), label="Species", parameter_problems=problems)
    assert len(err.value.problems) == len(problems)


def test_an_unreadable_source_is_one_problem_naming_the_file(tmp_path):
    with pytest.raises(core.PreflightError, match="source_uri: .*nope.csv: no such file"):
        core.check(str(tmp_path / "nope.csv"), label="y")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(core.PreflightError, match="bad.parquet: not a readable Parquet file"):
        core.check(str(tmp_path / "bad.parquet"), label="y")


def test_the_report_lists_task_classes_dropped_columns_and_warnings(tmp_path, frame):
    result = core.check(_table(tmp_path, frame), label="Species")
    text = core.markdown_report(result, "t.csv", "Species")
    assert "- task: binary" in text and "'a': 133" in text and "`'empty'`" in text and "null in every row" in text


def test_promoting_a_cluster_canary_needs_the_metrics_it_is_judged_by():
    assert core.check_parameters(push_mode="cluster", canary_traffic_percent=10, promote=True) == [
        "promote=True in cluster mode judges the canary's error rate and latency before promoting: set "
        "prometheus_url (the Prometheus that scrapes the InferenceService), or promote=False"]
    assert "needs prometheus_selector" in core.check_parameters(
        push_mode="cluster", canary_traffic_percent=10, promote=True, prometheus_url="http://prometheus:9090")[0]
    assert core.check_parameters(push_mode="cluster", canary_traffic_percent=10, promote=True,
                                 prometheus_url="http://prometheus:9090", prometheus_selector='pod=~"m-.*"') == []
    assert core.check_parameters(push_mode="dry_run", canary_traffic_percent=10, promote=True) == []
