"""What one component writes and another (or the pipeline) reads back, not a component:
property names, file names and readers of the Examples, Model, ModelBlessing and
ModelEvaluation outputs. Light to import unless a module says otherwise."""
