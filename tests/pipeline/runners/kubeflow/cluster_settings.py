"""The cluster settings the Kubeflow tests compile and submit with (a module of its own:
`conftest` names a different module in each test folder)."""

IMAGE = "registry.example.com/ml/imgpipe:1.2.3"
CLUSTER = ("data.source=gs://imgpipe-data/flowers", "kubeflow.pipeline_root=gs://imgpipe/root",
           "serving_root=gs://imgpipe/serving", f"kubeflow.image={IMAGE}",
           "registry.tracking_uri=http://mlflow.mlflow:5000")


def sets(*overrides: str) -> list:
    """`--set` flags for the CLI."""
    return [flag for o in overrides for flag in ("--set", o)]
