"""The Evaluator executor: TFX's, after deciding whether there is a baseline to compare
with and completing the EvalConfig from the models' labels (tfma_config.py).

LatestBlessedModel's output is compared with unless it found nothing, or found the
candidate itself (a re-run whose Trainer was cached: a comparison would be with itself,
so the candidate is evaluated alone and change thresholds do not apply). When it found a
version, the blessing records that version's number and whether it was the candidate
(baseline.py).
"""
import math
from typing import Any, Dict, List, Sequence

import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.artifacts import baseline as properties
from components.artifacts.evaluation import Evaluation, read_evaluation
from components.artifacts.metric_names import ACCURACY, RECALL
from components.artifacts.model_contract import model_labels
from components.evaluator.tfma_config import complete_eval_config


def undefined_gated_metrics(evaluation: Evaluation, labels: Sequence[str]) -> List[str]:
    """The gated metrics of the overall slice that are NaN (e.g. the recall of a class
    with no eval example): a threshold on NaN passes or fails by accident, and a NaN
    baseline would refuse every later candidate."""
    undefined = [ACCURACY] if math.isnan(evaluation.metrics.get(ACCURACY, 0.0)) else []
    for class_id, values in sorted(evaluation.per_class.items()):
        if math.isnan(values.get(RECALL, 0.0)):
            name = labels[class_id] if 0 <= class_id < len(labels) else str(class_id)
            undefined.append(f"{RECALL} of class {name!r}")
    return undefined


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor with the baseline decided and the EvalConfig completed."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        key = standard_component_specs.EVAL_CONFIG_KEY
        config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[key], config)
        labels = model_labels(artifact_utils.get_single_uri(
            input_dict[standard_component_specs.MODEL_KEY]))
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        baseline = baselines[0] if baselines else None
        found = baseline is not None and \
            baseline.get_int_custom_property(properties.FOUND) == 1
        itself = found and baseline.get_int_custom_property(
            properties.SAME_AS_CANDIDATE) == 1
        inputs = dict(input_dict)
        if not found or itself:
            inputs.pop(standard_component_specs.BASELINE_MODEL_KEY, None)
        completed = complete_eval_config(
            config, labels, model_labels(baseline.uri) if found and not itself else None)
        super().Do(inputs, output_dict,
                   {**exec_properties, key: proto_utils.proto_to_json(completed)})
        undefined = undefined_gated_metrics(read_evaluation(artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EVALUATION_KEY])), labels)
        if undefined:
            raise ValueError(f"undefined (NaN) on the eval split: {', '.join(undefined)}; no "
                             "threshold can judge them (each class needs eval images: "
                             "data.min_images_per_split)")
        if found:
            blessing = artifact_utils.get_single_instance(
                output_dict[standard_component_specs.BLESSING_KEY])
            blessing.set_int_custom_property(
                properties.BASELINE_SERVING_VERSION,
                baseline.get_int_custom_property(properties.SERVING_VERSION))
            blessing.set_int_custom_property(properties.BASELINE_IS_CANDIDATE, int(itself))
