"""The serving library: what the components and the pipeline's commands share about served
models, not a component. The serving root's layout, TF Serving's models.config and a
running server, the MLflow registry and the MLflow model, publishing a version (write,
then rename) and its typed model card."""
