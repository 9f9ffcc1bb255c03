"""Runs one RegistryPusher push in its own process, for tests that kill it part-way
(components/serving/fault_points.py): python push_child.py JSON_ARGS."""
import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.path.insert(0, str(Path(__file__).parent.parent))  # pusher_helpers

from tfx.types import standard_artifacts  # noqa: E402

from pusher_helpers import blessing, push  # noqa: E402

if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    model = standard_artifacts.Model()
    model.uri, model.id = args["model_uri"], args["model_id"]
    root = Path(args["tmp"])
    push(root, model, blessing(root, True), Path(args["serving"]), args["registry_uri"],
         model_name=args["model_name"])
