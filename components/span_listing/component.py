"""SpanListing: lists the spans of the window under data_root, and names the champion a
retrain may start from (see executor.py).

    listing = SpanListing(data_root=..., span_pattern="{SPAN}", window_spans=2)
    example_gen = ImageExampleGen(..., span_listing=listing.outputs["span_listing"]
                                  .future()[0].value)
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.span_listing import executor


class SpanListingSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.DATA_ROOT_KEY: ExecutionParameter(type=str),
        executor.SPAN_PATTERN_KEY: ExecutionParameter(type=str),
        executor.WINDOW_SPANS_KEY: ExecutionParameter(type=int),
        executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
        executor.WARM_START_MODE_KEY: ExecutionParameter(type=str),
        executor.PRECOMPUTED_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {}
    OUTPUTS = {executor.SPAN_LISTING_KEY: ChannelParameter(type=standard_artifacts.String),
               executor.WARM_START_KEY: ChannelParameter(type=standard_artifacts.String)}


class SpanListing(base_component.BaseComponent):
    SPEC_CLASS = SpanListingSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, data_root, span_pattern: str, window_spans: int, serving_dir: str,
                 warm_start_mode: str, precomputed: str = ""):
        super().__init__(spec=SpanListingSpec(
            data_root=data_root, span_pattern=span_pattern, window_spans=window_spans,
            serving_dir=serving_dir, warm_start_mode=warm_start_mode, precomputed=precomputed,
            span_listing=types.Channel(type=standard_artifacts.String),
            warm_start=types.Channel(type=standard_artifacts.String)))
