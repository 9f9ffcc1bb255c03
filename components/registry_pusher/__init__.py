"""RegistryPusher: atomic push of a blessed model to a TF Serving layout, a model card
beside it, and registration in the MLflow Model Registry."""
