"""Where a pipeline runs: locally (LocalDagRunner), on Kubeflow Pipelines (compile, submit,
schedule), and the boot script of a local Beam worker pool."""
