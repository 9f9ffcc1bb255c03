"""LatestBlessedModel: the Evaluator's baseline, found by a container like any other step."""
