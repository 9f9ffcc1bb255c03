"""Evaluator: TFX's Evaluator with its baseline decided at run time, its EvalConfig
completed from the models' labels, and native TFMA metrics."""
