"""The data guard: TFDV's schema validation and drift comparators against the champion's
recorded data, on data whose label mix or image sizes really shift and on data that does
not; the reference in the serving root; `accept`."""
import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import standard_artifacts

from components.serving import data_reference as reference
from components.artifacts import data_guard as guard_report
from components.data_guard import checks
from components.data_guard.config import GuardConfig
from components.data_guard.executor import Executor, GUARD_CONFIG_KEY, SERVING_DIR_KEY
from trainer import features


def _frame(seed, n=400, labels=("cat", "dog"), mix=(0.5, 0.5), side=64, fmt="JPEG"):
    rng = np.random.default_rng(seed)
    height = rng.normal(side, side / 10, n).clip(8).astype(np.int64)
    return pd.DataFrame({
        features.LABEL_KEY: rng.choice(labels, n, p=mix),
        features.IMAGE_ID_KEY: [f"{seed}/{i}.jpg" for i in range(n)],
        features.HEIGHT_KEY: height,
        features.WIDTH_KEY: (height * rng.uniform(0.9, 1.1, n)).astype(np.int64),
        features.FORMAT_KEY: [fmt] * n,
        features.FILE_SIZE_KEY: (height.astype(float) ** 2 * 0.3).astype(np.int64),
        features.BRIGHTNESS_KEY: rng.normal(120, 20, n),
        features.SHARPNESS_KEY: rng.gamma(4, 50, n),
    })


def _stats(frame):
    return tfdv.generate_statistics_from_dataframe(frame)


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A serving dir whose champion, version 3, has its training data recorded."""
    serving = tmp_path_factory.mktemp("serving") / "model"
    (serving / "3").mkdir(parents=True)
    (serving / "3" / "saved_model.pb").write_bytes(b"")
    stats = _stats(_frame(seed=1))
    reference.record_version(str(serving), 3, tfdv.infer_schema(stats), stats, "run-1", 2.0)
    return str(serving)


def _guard(tmp_path, serving, frame, **config):
    """Runs the executor as TFX does, on StatisticsGen's layout of `frame`'s statistics."""
    stats_artifact = standard_artifacts.ExampleStatistics()
    stats_artifact.uri = str(tmp_path / "stats")
    stats_artifact.split_names = '["train", "eval"]'
    split = tmp_path / "stats" / "Split-train"
    split.mkdir(parents=True)
    (split / "FeatureStats.pb").write_bytes(_stats(frame).SerializeToString())
    out = standard_artifacts.ExampleAnomalies()
    out.uri = str(tmp_path / "out")
    (tmp_path / "out").mkdir()
    guard = GuardConfig(**config)
    Executor().Do({"statistics": [stats_artifact]}, {"report": [out]},
                  {SERVING_DIR_KEY: serving, GUARD_CONFIG_KEY: json.dumps(asdict(guard))})
    return json.loads((tmp_path / "out" / guard_report.REPORT_FILE).read_text()), out


def test_data_like_the_champions_passes_with_small_measured_drift(tmp_path, champion):
    report, out = _guard(tmp_path, champion, _frame(seed=2))
    assert report["anomalies"] == [] and report["findings"] == []
    measured = {d["feature"]: d for d in report["drift"]}
    assert set(measured) == {features.LABEL_KEY, *features.PROPERTY_FEATURES}
    assert measured[features.LABEL_KEY]["measure"] == "L_INFTY"
    assert measured[features.HEIGHT_KEY]["measure"] == "JENSEN_SHANNON_DIVERGENCE"
    assert all(d["value"] < d["threshold"] for d in report["drift"])
    assert "champion v3" in report["reference"]
    assert json.loads(out.get_string_custom_property(guard_report.FINDINGS)) == []


def test_a_shifted_label_mix_stops_the_run_with_the_measured_distance(tmp_path, champion):
    with pytest.raises(guard_report.DataGuardStop) as stop:
        _guard(tmp_path, champion, _frame(seed=3, mix=(0.9, 0.1)))
    (finding,) = stop.value.findings
    assert finding.startswith("drift: label L_INFTY 0.")
    value = float(finding.split()[3])
    assert 0.3 < value < 0.5 and "above the threshold 0.2" in finding
    assert guard_report.findings_in(str(stop.value).splitlines()) == [finding]


def test_drift_only_warns_when_so_configured(tmp_path, champion):
    report, out = _guard(tmp_path, champion, _frame(seed=3, mix=(0.9, 0.1)), on_drift="warn")
    (finding,) = report["findings"]
    assert finding.startswith("drift: label L_INFTY")
    assert json.loads(out.get_string_custom_property(guard_report.FINDINGS)) == [finding]


def test_larger_images_are_out_of_range_and_drift(tmp_path, champion):
    with pytest.raises(guard_report.DataGuardStop) as stop:
        _guard(tmp_path, champion, _frame(seed=4, side=400))
    text = "\n".join(stop.value.findings)
    assert "anomaly: height:" in text and "anomaly: width:" in text
    assert "drift: height JENSEN_SHANNON_DIVERGENCE" in text
    assert "drift: file_size JENSEN_SHANNON_DIVERGENCE" in text
    assert "drift: brightness" not in text  # unchanged property: no finding


def test_a_new_label_a_new_format_and_a_missing_feature_are_anomalies(tmp_path, champion):
    frame = _frame(seed=5, labels=("cat", "dog", "fox"), mix=(0.45, 0.45, 0.1), fmt="PNG")
    frame = frame.drop(columns=[features.SHARPNESS_KEY])
    with pytest.raises(guard_report.DataGuardStop) as stop:
        _guard(tmp_path, champion, frame, on_drift="warn")
    anomalies = {f.split(":")[1].strip(): f for f in stop.value.findings}
    assert "fox" in anomalies[features.LABEL_KEY]
    assert "PNG" in anomalies[features.FORMAT_KEY]
    assert features.SHARPNESS_KEY in anomalies
    assert "accept" in str(stop.value)


def test_accepting_a_change_is_recorded_and_lets_that_data_pass(tmp_path, champion):
    shifted = _frame(seed=6, labels=("cat", "dog", "fox"), mix=(0.4, 0.4, 0.2))
    with pytest.raises(guard_report.DataGuardStop):
        _guard(tmp_path / "before", champion, shifted)
    path, accepted = reference.accept(champion, _stats(shifted), "run-6",
                                      ["anomaly: label: fox"], 2.0, "alice")
    assert accepted.record["kind"] == "accepted" and accepted.record["version"] == 3
    assert accepted.record["accepted_by"] == "alice"
    assert accepted.record["replaces"] == "v3"
    assert reference.current(champion).path == path
    report, _ = _guard(tmp_path / "after", champion, _frame(seed=7, labels=(
        "cat", "dog", "fox"), mix=(0.4, 0.4, 0.2)))
    assert report["findings"] == [] and "accepted" in report["reference"]


def test_without_a_champion_there_is_nothing_to_compare(tmp_path):
    report, _ = _guard(tmp_path, str(tmp_path / "empty"), _frame(seed=8, mix=(0.9, 0.1)))
    assert report["findings"] == [] and report["drift"] == []
    assert "nothing yet" in report["reference"]


def test_a_half_written_reference_is_ignored_and_written_again(tmp_path):
    serving = tmp_path / "model"
    (serving / "1").mkdir(parents=True)
    (serving / "1" / "saved_model.pb").write_bytes(b"")
    folder = serving / reference.FOLDER / "v1"
    folder.mkdir(parents=True)
    (folder / reference.SCHEMA_FILE).write_text("")  # a crash before record.json
    assert reference.current(str(serving)) is None
    stats = _stats(_frame(seed=9))
    assert reference.record_version(str(serving), 1, tfdv.infer_schema(stats), stats, "r",
                                    2.0) == str(folder)
    assert reference.current(str(serving)).record["run_id"] == "r"
    assert reference.record_version(str(serving), 1, tfdv.infer_schema(stats), stats, "r2",
                                    2.0) is None


def test_image_properties_are_not_compared_on_too_few_images():
    """Histograms of a few dozen images differ by sampling noise alone: below
    guard.min_property_drift_examples the properties are not compared (and say why);
    the label mix still is."""
    reference = _stats(_frame(1, n=40))
    larger = _stats(_frame(2, n=40, side=128))
    schema = tfdv.infer_schema(reference)
    few = checks.check(larger, schema, reference, GuardConfig())
    assert "fewer than guard.min_property_drift_examples" in few.properties_not_compared
    assert {d.feature for d in few.drift} == {features.LABEL_KEY}
    counted = checks.check(larger, schema, reference,
                           GuardConfig(min_property_drift_examples=40))
    assert not counted.properties_not_compared
    assert any(d.feature == features.WIDTH_KEY and d.breached for d in counted.drift)


def test_an_imported_schema_file_is_the_reference_instead_of_the_champions(tmp_path):
    """guard.schema: a schema file checked against even with no champion; its label set
    (here with a third class) admits what the champion's would refuse."""
    serving = tmp_path / "serving" / "model"
    serving.mkdir(parents=True)
    three = _stats(_frame(seed=7, labels=("cat", "dog", "fox"), mix=(0.4, 0.4, 0.2)))
    path = tmp_path / "schema.pbtxt"
    tfdv.write_schema_text(reference.reference_schema(tfdv.infer_schema(three), three, 2.0),
                           str(path))
    frame = _frame(seed=8, labels=("cat", "dog", "fox"), mix=(0.3, 0.3, 0.4))
    report, _ = _guard(tmp_path / "ok", str(serving), frame, schema=str(path))
    assert report["reference"].startswith("imported schema") and not report["findings"]
    with pytest.raises(guard_report.DataGuardStop) as stop:
        _guard(tmp_path / "new", str(serving), _frame(seed=9, labels=("cat", "owl")),
               schema=str(path))
    assert any("owl" in f for f in stop.value.findings if f.startswith("anomaly: label"))
