"""The product commands behind the CLI, as plain functions: the registry listing, predict,
and the run report."""
