"""The names the Evaluator's metrics are keyed by in its output, the model card and the
MLflow run (light to import: no TFMA)."""

EXAMPLE_COUNT = "example_count"
ACCURACY = "accuracy"
TOP_K_ACCURACY = "top_k_accuracy"
PRECISION, RECALL, F1, AUC = "precision", "recall", "f1_score", "auc"
PER_CLASS_METRICS = (PRECISION, RECALL, F1, AUC)
CONFUSION_MATRIX = "multi_class_confusion_matrix_plot"
