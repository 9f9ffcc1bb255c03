"""ImageExampleGen: a folder or CSV manifest of images -> tf.Example TFRecords."""
