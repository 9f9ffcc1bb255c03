"""The pipeline's component ids, spelled once: the DAG names its nodes with them, the run
summary and the report find a run's outputs by them, and each has its section of
`kubeflow.resources` (RESOURCE_FIELDS). Light to import: no TFX."""

SPAN_LISTING = "SpanListing"
EXAMPLE_GEN = "ImageExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
TRANSFORM = "Transform"
TRAINER = "Trainer"
BASELINE = "LatestBlessedModel"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
DATA_GUARD = "DataGuard"
DATA_REFERENCE = "DataReference"
NOTIFY_EXIT_HANDLER = "NotifyExitHandler"

# Nodes whose answer depends on the world, not on their inputs: never taken from the cache
# (TFX sets caching per pipeline; the runners apply this per node). The local runner lists
# the spans itself before a run and hands the listing to SpanListing, which TFX's cache
# then keys on: there SpanListing may come from the cache. The data guard reads the
# champion's reference and DataReference writes it: both follow the serving root.
NEVER_CACHED_LOCALLY = (BASELINE, DATA_GUARD, DATA_REFERENCE)
NEVER_CACHED = (*NEVER_CACHED_LOCALLY, SPAN_LISTING)

# component id -> its field of kubeflow.resources (kubeflow_config.ComponentResources)
RESOURCE_FIELDS = {
    SPAN_LISTING: "span_listing",
    EXAMPLE_GEN: "image_example_gen",
    STATISTICS_GEN: "statistics_gen",
    DATA_GUARD: "data_guard",
    SCHEMA_GEN: "schema_gen",
    EXAMPLE_VALIDATOR: "example_validator",
    TRANSFORM: "transform",
    TRAINER: "trainer",
    BASELINE: "latest_blessed_model",
    EVALUATOR: "evaluator",
    PUSHER: "pusher",
    DATA_REFERENCE: "data_reference",
    NOTIFY_EXIT_HANDLER: "notify_exit_handler",  # on Kubeflow with notify.on_kubeflow
}
