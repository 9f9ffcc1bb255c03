"""What `imgpipe registry list` and `imgpipe registry show` print (the operations are
components/serving/versions.py)."""
from typing import Any, List

from components.serving.mlflow_registry import CHAMPION, SERVING_VERSION_TAG, champion
from components.serving.versions import (Entry, RegistryError, by_serving_version,
                                         registered_aliases)


def entry_lines(rows: List[Entry]) -> List[str]:
    """`imgpipe registry list`'s table of `rows`, and a hint when some are unregistered."""
    lines = [f"{'serving':>7}  {'registry':>8}  {'aliases':10}  {'accuracy':>8}  "
             f"{'pipeline run':26}  path"]
    for e in rows:
        acc = "" if e.accuracy is None else f"{e.accuracy:.4f}"
        registry = e.registry_version or "-"
        aliases = ",".join(e.aliases) if e.registered else "NOT REGISTERED"
        lines.append(f"{e.serving_version or '-':>7}  {registry:>8}  {aliases:10}  {acc:>8}  "
                     f"{e.pipeline_run_id:26}  {e.serving_path}")
    if any(not e.registered for e in rows):
        lines.append("\nversions marked NOT REGISTERED were pushed while the registry failed; "
                     "`imgpipe registry sync` registers them")
    return lines


def version_lines(client: Any, name: str, spec: str) -> List[str]:
    """`imgpipe registry show`: one version's tags and metrics; `spec` is a serving
    version number or 'champion'."""
    if spec == CHAMPION:
        version = champion(client, name)
        if version is None:
            raise RegistryError(f"'{name}' has no champion yet")
    else:
        version = by_serving_version(client, name, _serving_number(spec))
    run = client.get_run(version.run_id) if version.run_id else None
    aliases = [a for a, v in registered_aliases(client, name).items()
               if str(v) == str(version.version)]
    lines = [f"{name}: registry version {version.version}, serving version "
             f"{version.tags.get(SERVING_VERSION_TAG)}"
             f"{' (' + ', '.join(sorted(aliases)) + ')' if aliases else ''}",
             f"  source: {version.source}"]
    lines += [f"  {key}: {value}" for key, value in sorted(version.tags.items())]
    if run is not None:
        lines.append("  metrics:")
        lines += [f"    {key}: {value:.4f}" for key, value in sorted(run.data.metrics.items())]
    return lines


def _serving_number(raw: str) -> int:
    if not str(raw).isdigit():
        raise RegistryError(f"expected a serving version number or '{CHAMPION}', got {raw!r}")
    return int(raw)
