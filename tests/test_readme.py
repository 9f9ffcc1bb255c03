"""README.md: the configuration it shows is the configuration the code has."""
import re
import textwrap
from pathlib import Path

import yaml

from pipeline.config import load_config
from tests.conftest import config_leaves as _leaves

README = Path(__file__).resolve().parents[1] / "README.md"
# Values the README shows as examples of what a user sets, not as defaults.
EXAMPLES = {"data.source", "registry.tf_serving_url"}


def test_every_config_value_the_readme_shows_is_the_default():
    """A changed default must change the README too: each YAML block's values (bar the
    examples of what a user sets) equal the loaded defaults, and every key exists."""
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", README.read_text(), re.M | re.S)
    assert blocks, "README.md shows no YAML config"
    defaults = _leaves(load_config().to_dict())
    shown = {}
    for indent, body in blocks:
        shown.update(_leaves(yaml.safe_load(textwrap.dedent(body))))
    assert set(shown) <= set(defaults), set(shown) - set(defaults)
    assert {key: value for key, value in shown.items()
            if key not in EXAMPLES and value != defaults[key]} == {}
