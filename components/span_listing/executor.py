"""SpanListing executor: the window's spans with their fingerprints, and the champion the
Trainer may start from, as String artifacts.

On Kubeflow the String becomes an output parameter (TFX's compiler turns an exec property
`listing.future()[0].value` into a task output parameter), and parameter values are what
KFP's cache key holds: ImageExampleGen's key changes exactly when the window's files
change. The step itself must run every time (pipeline.NEVER_CACHED): its answer depends
on the data folder, not on its inputs. The local runner lists the spans before the run
and passes both outputs in `precomputed`, so that TFX's cache, which keys on input
artifacts, keys on them.

The warm-start output (trainer/warm_start.py) names the champion (the `stable` version of
the serving dir, as LatestBlessedModel finds it) with the listing's digest. When the
champion was itself trained on this very listing, the output is the parameter that
champion was trained with (recorded in its folder): the Trainer's key is then the one of
the execution that made the champion, and nothing new means nothing retrained.
"""
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.artifacts import spans
from components.serving import serving_config, serving_root
from trainer import warm_start

DATA_ROOT_KEY = "data_root"
SPAN_PATTERN_KEY = "span_pattern"
WINDOW_SPANS_KEY = "window_spans"
SERVING_DIR_KEY = "serving_dir"
WARM_START_MODE_KEY = "warm_start_mode"  # train.warm_start
PRECOMPUTED_KEY = "precomputed"  # JSON {output key: value}; "": list here
SPAN_LISTING_KEY = "span_listing"  # the outputs
WARM_START_KEY = warm_start.WARM_START_KEY


def listing(data_root: str, span_pattern: str, window_spans: int) -> str:
    """The listing a run of the data at data_root gets (spans.to_listing)."""
    return spans.to_listing(spans.list_window(data_root, span_pattern, window_spans))


def _champion(serving_dir: str) -> Optional[Tuple[int, str]]:
    """(version, path) of the `stable` version, else of the newest complete one."""
    versions = [(v, p) for v, p in serving_root.serving_versions(serving_dir)
                if fileio.exists(os.path.join(p, serving_root.SAVED_MODEL_FILE))]
    stable = serving_config.stable_version(serving_dir)
    return next((vp for vp in versions if vp[0] == stable), versions[0] if versions else None)


def warm_start_parameter(serving_dir: str, span_listing: str, mode: str) -> str:
    """The Trainer's warm-start parameter (see the module docstring)."""
    window = hashlib.sha256(span_listing.encode()).hexdigest()[:16]
    champion = _champion(serving_dir) if mode == "champion" else None
    if champion is not None:
        record = warm_start.read_start(champion[1]) or {}
        previous = record.get("parameter", "")
        if previous and json.loads(previous).get("window") == window:
            return previous
    return json.dumps({"champion": {"version": champion[0], "path": champion[1]}
                       if champion else None, "window": window}, sort_keys=True)


def outputs(data_root: str, span_pattern: str, window_spans: int, serving_dir: str,
            mode: str) -> str:
    """Both outputs, as the `precomputed` JSON."""
    value = listing(data_root, span_pattern, window_spans)
    return json.dumps({SPAN_LISTING_KEY: value,
                       WARM_START_KEY: warm_start_parameter(serving_dir, value, mode)})


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        values = json.loads(exec_properties.get(PRECOMPUTED_KEY) or "{}") or json.loads(
            outputs(exec_properties[DATA_ROOT_KEY], exec_properties.get(SPAN_PATTERN_KEY) or "",
                    int(exec_properties.get(WINDOW_SPANS_KEY) or 0),
                    exec_properties[SERVING_DIR_KEY],
                    exec_properties.get(WARM_START_MODE_KEY) or "none"))
        for key in (SPAN_LISTING_KEY, WARM_START_KEY):
            output = artifact_utils.get_single_instance(output_dict[key])
            fileio.makedirs(os.path.dirname(output.uri))
            output.value = values[key]
            logging.info("%s: %s", key, values[key])
