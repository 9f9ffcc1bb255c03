"""How the pieces become a pipeline and where it runs."""
import trainer  # noqa: F401  the Keras mode (trainer/__init__.py), before TensorFlow loads
