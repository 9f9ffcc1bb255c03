"""Feature keys: the single place they are spelled.

Ingestion writes the RAW_* features into tf.Examples; Transform turns them into the
TRANSFORMED_* features the Trainer reads. The image stays encoded all the way through.
"""

# Raw tf.Example features written by ImageExampleGen.
IMAGE_KEY = "image_bytes"  # original encoded bytes (JPEG/PNG), never decoded floats
LABEL_KEY = "label"  # class name string
IMAGE_ID_KEY = "image_id"  # path relative to the data root, posix separators
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
CHANNELS_KEY = "channels"
FORMAT_KEY = "format"  # "JPEG" / "PNG" as sniffed from the bytes, not the extension
SIZE_BUCKET_KEY = "size_bucket"  # "small" / "medium" / "large", for evaluation slices
SOURCE_DIR_KEY = "source_dir"  # first folder under the class folder ("" when none)
# 64-bit perceptual hash of the pixels (signed int64 of the same bits); ingestion's split
# rule groups near-duplicates by it. Transform and the model ignore it.
FINGERPRINT_KEY = "image/fingerprint"
FILE_SIZE_KEY = "file_size"  # bytes of the stored encoded image
BRIGHTNESS_KEY = "brightness"  # mean luma, 0-255, of a small greyscale thumbnail
SHARPNESS_KEY = "sharpness"  # variance of the thumbnail's Laplacian (blur: low)

STRING_FEATURES = (IMAGE_KEY, LABEL_KEY, IMAGE_ID_KEY, FORMAT_KEY, SIZE_BUCKET_KEY,
                   SOURCE_DIR_KEY)
INT_FEATURES = (HEIGHT_KEY, WIDTH_KEY, CHANNELS_KEY, FINGERPRINT_KEY, FILE_SIZE_KEY)
FLOAT_FEATURES = (BRIGHTNESS_KEY, SHARPNESS_KEY)
# What the data guard compares between runs: the class mix, and the images' properties.
# (Identity and provenance, image_id, source_dir and the fingerprint, never have a fixed
# set of values.)
PROPERTY_FEATURES = (HEIGHT_KEY, WIDTH_KEY, FILE_SIZE_KEY, BRIGHTNESS_KEY, SHARPNESS_KEY)
SIZE_FEATURES = (HEIGHT_KEY, WIDTH_KEY, FILE_SIZE_KEY)
OPEN_VALUED_FEATURES = (IMAGE_ID_KEY, SOURCE_DIR_KEY, FINGERPRINT_KEY)

# Transformed features (Transform output, Trainer input).
TRANSFORMED_IMAGE_KEY = IMAGE_KEY  # passed through unchanged
LABEL_ID_KEY = "label_id"  # int64 index into the label vocabulary

# Name of the label vocabulary Transform writes; the model ships a copy inside it.
LABEL_VOCABULARY = "label"

# Split names the pipeline produces.
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
