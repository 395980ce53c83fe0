"""Generated alert rules: promtool accepts them, and every alert fires on its injected fault and stays silent on
clean traffic (``promtool test rules`` over synthetic series of the kfpc server's metrics)."""

from __future__ import annotations

import json
import shutil
import subprocess

import monitor_series as synthetic
import pytest
import yaml

from kfpc.components.monitor import core, reference, rules

SCORES = [0.0] * 7 + [0.02, 0.04, 0.06, 0.08, 0.08, 0.1, 0.1, 0.1, 0.1, 0.1, 0.08, 0.07, 0.07]
PROMTOOL = shutil.which("promtool")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is not installed: `apt-get install prometheus` (.ci/run does it)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def config(tmp_path_factory, penguins):
    from kfpc.components.artifacts import read_statistics as load_statistics

    card = {"task": "multiclass", "classes": ["Adelie", "Chinstrap", "Gentoo"], "label": "species",
            "features": [{"name": n, "dtype": "string" if n in ("island", "sex") else "float64"}
                         for n in ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
                                   "sex", "year")]}
    out = tmp_path_factory.mktemp("monitoring") / "config"
    stats = load_statistics(penguins["stats"], "train")
    # the score reference as the component builds it: shares of per-row scores in the server's buckets
    scores = [b - 0.01 for b, share in zip(rules.SCORE_BUCKETS, SCORES, strict=True) for _ in range(int(round(share * 100)))]
    meta = core.write_monitoring_config(out, card, stats, model_name="penguins", namespace="ml", scores=scores,
                                        thresholds=rules.AlertThresholds(
        window=synthetic.WINDOW, for_duration=synthetic.FOR, throughput_offset=synthetic.OFFSET))
    ref = json.loads((out / core.REFERENCE_FILE).read_text())["reference"]
    assert ref["score_shares"] == pytest.approx(SCORES, abs=1e-9)
    return out, meta, ref, card, stats


def test_every_generated_rule_file_passes_promtool_check(config):
    out, meta, _, card, stats = config
    result = _promtool("check", "rules", str(out / core.RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {meta['rules']} rules found" in result.stdout
    # the PrometheusRule holds the same groups; promtool checks its spec as a rule file too
    rule = yaml.safe_load((out / core.PROMETHEUS_RULE_FILE).read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["metadata"] == {"name": "penguins-kfpc-monitoring", "namespace": "ml", "labels": {
        "app.kubernetes.io/managed-by": "kfpc", "kfpc.dev/model": "penguins"}}
    spec_file = out.parent / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(rule["spec"]))
    assert _promtool("check", "rules", str(spec_file)).returncode == 0
    defaults = core.write_monitoring_config(out.parent / "defaults", card, stats, model_name="penguins",
                                            namespace="ml")
    result = _promtool("check", "rules", str(out.parent / "defaults" / core.RULES_FILE))
    assert result.returncode == 0 and "offset 1d" in (out.parent / "defaults" / core.RULES_FILE).read_text()
    assert set(defaults["alerts"]) | {"KfpcPredictionShift"} == set(meta["alerts"])
    assert set(meta["alerts"]) == {"KfpcServerErrors", "KfpcClientErrors", "KfpcLatencyP99", "KfpcNotReady",
                                   "KfpcThroughputDrop", "KfpcPredictionShift", "KfpcFeatureMissingRate",
                                   "KfpcFeatureMeanShift", "KfpcFeatureCategoryDrift"}


def _expected(groups: list[dict], alert: str, extra: dict) -> list[dict]:
    for group in groups:
        for rule in group["rules"]:
            # a feature label is the rule's (one rule per feature) or the series' (one rule for all features)
            if rule.get("alert") == alert and all(rule["labels"].get(k, v) == v for k, v in extra.items()):
                return [{"exp_labels": {**rule["labels"], "model_name": "penguins", **extra},
                         "exp_annotations": rule["annotations"]}]
    raise AssertionError(f"no rule {alert} {extra}")


def test_every_alert_fires_on_its_fault_and_stays_silent_on_clean_traffic(config, tmp_path):
    out, meta, ref, _, _ = config
    groups = yaml.safe_load((out / core.RULES_FILE).read_text())["groups"]
    base = {"namespace": "ml", "model_name": "penguins"}
    eval_time = f"{synthetic.EVAL_MINUTE}m"
    faults = synthetic.faults(ref)
    assert set(faults) == set(meta["alerts"]), "every generated alert has a fault injected"
    tests = [{"interval": "1m", "name": "clean traffic", "input_series": synthetic.series(synthetic.clean_world(ref), base),
              "alert_rule_test": [{"eval_time": eval_time, "alertname": a, "exp_alerts": []} for a in meta["alerts"]]}]
    for alert, (world, extra) in faults.items():
        tests.append({"interval": "1m", "name": f"fault for {alert}", "input_series": synthetic.series(world, base),
                      "alert_rule_test": [{"eval_time": eval_time, "alertname": alert,
                                           "exp_alerts": _expected(groups, alert, extra)}]})
    test_file = tmp_path / "tests.yaml"
    shutil.copy(out / core.RULES_FILE, tmp_path / "rules.yaml")
    test_file.write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": synthetic.EVALUATION_INTERVAL, "tests": tests},
                                        sort_keys=False, width=1 << 20))
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "SUCCESS" in result.stdout


def test_a_quiet_hour_does_not_alert(config, tmp_path):
    """The same faults at 1/100 of the traffic (2 requests and 10 rows a minute) stay below the sample gates."""
    out, meta, ref, _, _ = config
    base = {"namespace": "ml", "model_name": "penguins"}
    tests = []
    for alert, (world, _) in synthetic.faults(ref).items():
        if alert not in ("KfpcClientErrors", "KfpcPredictionShift", "KfpcFeatureMissingRate",
                         "KfpcFeatureCategoryDrift"):  # (a replica down is not a matter of sample size)
            continue
        scaled = [{"series": s["series"], "values": _scale(s["values"], 0.01)} for s in synthetic.series(world, base)]
        tests.append({"interval": "1m", "name": f"quiet {alert}", "input_series": scaled,
                      "alert_rule_test": [{"eval_time": f"{synthetic.EVAL_MINUTE}m", "alertname": alert,
                                           "exp_alerts": []}]})
    shutil.copy(out / core.RULES_FILE, tmp_path / "rules.yaml")
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": synthetic.EVALUATION_INTERVAL, "tests": tests}, sort_keys=False, width=1 << 20))
    result = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def _scale(values: str, factor: float) -> str:
    parts = []
    for part in values.split():
        start, rest = part.split("+")
        step, count = rest.split("x")
        parts.append(f"{synthetic._fmt(float(start) * factor)}+{synthetic._fmt(float(step) * factor)}x{count}")
    return " ".join(parts)


def test_thresholds_and_reference_errors_name_the_field():
    with pytest.raises(rules.RulesError, match="window='ten minutes' is not a Prometheus duration"):
        rules.AlertThresholds(window="ten minutes")
    with pytest.raises(rules.RulesError, match="max_error_rate=1.5 is out of range"):
        rules.AlertThresholds(max_error_rate=1.5)
    with pytest.raises(rules.RulesError, match="score_shares has 3 values"):
        rules.rule_groups({"model_name": "m", "score_shares": [0.5, 0.5, 0.0], "features": []})
    with pytest.raises(rules.RulesError, match="feature 'colour' of the model card is not in the training"):
        from tensorflow_metadata.proto.v0 import statistics_pb2

        reference.build_reference({"features": [{"name": "colour", "dtype": "string"}]},
                                  statistics_pb2.DatasetFeatureStatistics(num_examples=3), model_name="m")


def test_sample_gates_follow_the_noise_of_a_clean_sample():
    t = rules.AlertThresholds()
    # n * PSI ~ chi2(k - 1): the 0.999 quantile of chi2(19) is 43.82, so 20 buckets need 439 rows at PSI 0.1
    assert rules.chi2_quantile(0.999, 19) == pytest.approx(43.82, abs=0.01)
    assert t.samples_for(20) == 439
    assert t.samples_for(2) == max(t.min_requests, 109)  # chi2(1) 0.999 = 10.83
    assert rules.AlertThresholds(min_samples=50).samples_for(20) == 50


def test_feature_names_are_quoted_for_promql_and_survive_promtool(tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = 'we"ird\\ name ü'
    stats = statistics_pb2.DatasetFeatureStatistics(num_examples=10)
    feature = stats.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.path.step.append(name)
    feature.num_stats.mean, feature.num_stats.std_dev = 1.0, 2.0
    feature.num_stats.common_stats.num_missing = 1
    core.write_monitoring_config(tmp_path / "c", {"features": [{"name": name, "dtype": "float64"}]}, stats,
                                 model_name="weird-model", namespace="")
    result = _promtool("check", "rules", str(tmp_path / "c" / core.RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'feature="we\\"ird\\\\ name ü"' in (tmp_path / "c" / core.RULES_FILE).read_text()
