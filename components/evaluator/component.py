"""Evaluator: TFX's Evaluator component running this package's executor.

    evaluator = Evaluator(examples=example_gen.outputs["examples"],
                          model=trainer.outputs["model"],
                          baseline_model=baseline.outputs["baseline_model"],
                          eval_config=tfma_config.eval_config(config.eval, config.train.top_k))
"""
from tfx.components.evaluator import component as evaluator_component
from tfx.dsl.components.base import executor_spec

from components.evaluator.executor import EvaluatorExecutor


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator running EvaluatorExecutor (compiled by its import path)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)
