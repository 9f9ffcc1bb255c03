"""How the pieces become a pipeline and where it runs."""
import os

# TFT and TFMA use tf_keras through tf.keras; our model code imports Keras 3 as `keras`
# and never touches tf.keras. Set before TensorFlow is imported so both stay deterministic.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
