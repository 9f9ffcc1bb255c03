"""SpanListing's warm-start parameter: a new champion changes it, nothing new does not."""
import json

from components.span_listing import executor
from components.serving import serving_root
from trainer import warm_start


def _push(serving_dir, version, parameter):
    folder = serving_dir / str(version)
    folder.mkdir(parents=True)
    (folder / serving_root.SAVED_MODEL_FILE).write_bytes(b"")
    (folder / warm_start.START_FILE).write_text(json.dumps({"parameter": parameter}))


def test_the_parameter_names_the_champion_unless_it_was_trained_on_this_data(tmp_path):
    serving = tmp_path / "serving"
    cold = executor.warm_start_parameter(str(serving), "listing-1", "champion")
    assert json.loads(cold)["champion"] is None
    _push(serving, 1, cold)  # the first run's model, trained on listing-1
    # Nothing new: the parameter the champion was trained with (the Trainer's cache key
    # is unchanged), not the champion itself.
    assert executor.warm_start_parameter(str(serving), "listing-1", "champion") == cold
    new_data = executor.warm_start_parameter(str(serving), "listing-2", "champion")
    assert json.loads(new_data)["champion"] == {"version": 1, "path": str(serving / "1")}
    _push(serving, 2, new_data)
    assert executor.warm_start_parameter(str(serving), "listing-2", "champion") == new_data
    assert json.loads(executor.warm_start_parameter(
        str(serving), "listing-3", "champion"))["champion"]["version"] == 2
    assert json.loads(executor.warm_start_parameter(
        str(serving), "listing-3", "none"))["champion"] is None
