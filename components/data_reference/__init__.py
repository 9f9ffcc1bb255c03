"""DataReference: records the data a pushed version was trained on, for the data guard."""
