"""The TFX components imgpipe adds, and the libraries they share (serving, artifacts)."""
import trainer  # noqa: F401  the Keras mode (trainer/__init__.py), before TensorFlow loads
