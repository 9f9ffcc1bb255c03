"""Everything that runs inside Transform and Trainer.

Importing this package sets the Keras mode of the whole project (components and pipeline
import it first): TFT and TFMA use tf_keras through tf.keras; our model code imports
Keras 3 as `keras` and never touches tf.keras. Set before TensorFlow is imported so both
stay deterministic. Processes that start from elsewhere (the container image, a Beam
worker) set the same variable in their environment.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
