"""A StatisticsGen output's statistics of one split, as the data guard, DataReference and
`imgpipe schema accept` read them."""
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import types
from tfx.types import artifact_utils

from trainer import features

STATS_FILE = "FeatureStats.pb"  # StatisticsGen's file in each split's folder


def load_split_statistics(artifact: types.Artifact, split: str = features.TRAIN_SPLIT
                          ) -> statistics_pb2.DatasetFeatureStatisticsList:
    uri = artifact_utils.get_split_uri([artifact], split)
    return tfdv.load_stats_binary(os.path.join(uri, STATS_FILE))
