"""SpanListing executor: the window's spans with their fingerprints, as a String artifact.

On Kubeflow the String becomes an output parameter (TFX's compiler turns an exec property
`listing.future()[0].value` into a task output parameter), and parameter values are what
KFP's cache key holds: ImageExampleGen's key changes exactly when the window's files
change. The step itself must run every time (pipeline.NEVER_CACHED): its answer depends
on the data folder, not on its inputs. The local runner lists the spans before the run
and passes the listing in `precomputed`, so that TFX's cache, which keys on input
artifacts, keys on the listing itself.
"""
import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.image_example_gen import spans

DATA_ROOT_KEY = "data_root"
SPAN_PATTERN_KEY = "span_pattern"
WINDOW_SPANS_KEY = "window_spans"
PRECOMPUTED_KEY = "precomputed"
SPAN_LISTING_KEY = "span_listing"  # the output


def listing(data_root: str, span_pattern: str, window_spans: int) -> str:
    """The listing a run of the data at data_root gets (spans.to_listing)."""
    return spans.to_listing(spans.list_window(data_root, span_pattern, window_spans))


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        value = exec_properties.get(PRECOMPUTED_KEY) or listing(
            exec_properties[DATA_ROOT_KEY], exec_properties.get(SPAN_PATTERN_KEY) or "",
            int(exec_properties.get(WINDOW_SPANS_KEY) or 0))
        output = artifact_utils.get_single_instance(output_dict[SPAN_LISTING_KEY])
        fileio.makedirs(os.path.dirname(output.uri))
        output.value = value
        logging.info("span listing: %s", value)
