"""Runs the container tasks of a compiled KFP v2 pipeline spec on this machine, outside
containers, the way KFP's driver and launcher feed them.

For each task, in DAG order: the ExecutorInput JSON KFP would build (input parameters
resolved from constants and the run's parameter values; input artifacts from upstream
outputs, with the metadata their executors reported; output artifacts under
<pipeline_root>/<pipeline>/<run>/<task>/<key>; outputs.outputFile), substituted for
`{{$}}` in the container's args, then the container's command run with this venv's
python (the spec says `python -m ...`). The executor's ExecutorOutput file is read back
for the metadata downstream tasks receive.

Every task must be a container (the open-source KFP backend runs nothing else). The
lifecycle preCacheCheck hook runs only when asked (Vertex AI runs it; the open-source KFP
launcher does not). A later run may start from an earlier one's results (`previous`):
its upstream tasks are then not run again, as with KFP's cache.

With a `cache` (ExecutionCache, a JSON file that outlives runs) the launcher decides
cache hits itself as the open-source KFP driver does: a task whose caching is enabled is
keyed on the CacheKey of kubeflow/pipelines api/v2alpha1/cache_key.proto, built as
backend/src/v2/cacheutils GenerateCacheKey builds it (input artifact NAMES, input
parameter values, output artifact types and metadata, output parameter types, the
container's image and command + args), fingerprinted as GenerateFingerPrint does
(sha256 of the key's JSON with sorted keys); a hit reuses the earlier execution's output
artifacts and parameters. Output artifacts get names unique to the execution, as MLMD
gives them, so a task that ran again changes every downstream key that takes its
artifacts: only parameter values can carry "nothing changed" across runs.
"""
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple


@dataclasses.dataclass
class TaskResult:
    name: str
    seconds: float = 0.0
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    log: Optional[Path] = None
    parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)  # output values
    cached: bool = False  # taken from the ExecutionCache, not run


class ExecutionCache:
    """Earlier executions by cache fingerprint, in a JSON file (KFP keeps them in its
    database: they outlive runs)."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = (
            json.loads(path.read_text()) if path.exists() else {})

    def get(self, fingerprint: str) -> Optional[Dict[str, Any]]:
        return self.entries.get(fingerprint)

    def put(self, fingerprint: str, result: TaskResult) -> None:
        self.entries[fingerprint] = {"task": result.name, "outputs": result.outputs,
                                     "parameters": result.parameters}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def cache_key(executor_input: Dict[str, Any], output_parameter_types: Dict[str, str],
              image: str, command_and_args: List[str]) -> Dict[str, Any]:
    """ml_pipelines.CacheKey, in its JSON form (protojson field names)."""
    inputs, outputs = executor_input["inputs"], executor_input["outputs"]
    return {
        "inputArtifactNames": {
            key: {"artifactNames": [a["name"] for a in value["artifacts"]]}
            for key, value in inputs.get("artifacts", {}).items()},
        "inputParameterValues": dict(inputs.get("parameterValues", {})),
        # RuntimeArtifact with its name and type and metadata: the uri wiped (and the name
        # is empty when the driver computes the key, before MLMD names the artifact).
        "outputArtifactsSpec": {
            key: {"type": value["artifacts"][0]["type"],
                  **({"metadata": value["artifacts"][0]["metadata"]}
                     if value["artifacts"][0].get("metadata") else {})}
            for key, value in outputs.get("artifacts", {}).items() if value["artifacts"]},
        "outputParametersSpec": {key: output_parameter_types[key]
                                 for key in outputs.get("parameters", {})},
        "containerSpec": {"image": image, "cmdArgs": list(command_and_args)},
    }


def fingerprint(key: Dict[str, Any]) -> str:
    """sha256 of the key's JSON, map keys sorted and compact (what Go's encoding/json
    makes of it)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)  # encoding/json's HTML-safe escaping
    return hashlib.sha256(text.encode()).hexdigest()


class TaskFailed(RuntimeError):
    pass


def dag_order(spec: Dict[str, Any]) -> List[str]:
    """Task names, each after every task it depends on (ties by name)."""
    tasks = spec["root"]["dag"]["tasks"]
    order: List[str] = []
    remaining = set(tasks)
    while remaining:
        ready = sorted(t for t in remaining
                       if set(tasks[t].get("dependentTasks", [])) <= set(order))
        if not ready:
            raise ValueError(f"cycle among tasks {sorted(remaining)}")
        order.extend(ready)
        remaining -= set(ready)
    return order


class LocalLauncher:
    def __init__(self, spec: Dict[str, Any], parameter_values: Dict[str, Any], work_dir: Path,
                 run_pre_cache_check: bool = False, python: str = sys.executable,
                 previous: Optional[Dict[str, "TaskResult"]] = None,
                 cache: Optional[ExecutionCache] = None):
        self.spec = spec
        self.work_dir = work_dir
        self.python = python
        self.run_pre_cache_check = run_pre_cache_check
        self.run_id = uuid.uuid4().hex[:8]
        self.parameters = {name: p.get("defaultValue")
                           for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}
        self.parameters.update(parameter_values)
        self.results: Dict[str, TaskResult] = dict(previous or {})
        self.cache = cache

    def run(self, only: Optional[Iterable[str]] = None) -> Dict[str, TaskResult]:
        """Runs the tasks in `only` (default: all) in DAG order; their upstream tasks must
        be among them or have run before."""
        wanted = set(only) if only is not None else None
        for name in dag_order(self.spec):
            if wanted is None or name in wanted:
                self.results[name] = self._run_task(name)
        return self.results

    # -- one task ----------------------------------------------------------------------
    def _run_task(self, name: str) -> TaskResult:
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            raise TaskFailed(f"{name}: not a container task ({sorted(executor)})")
        started = time.monotonic()
        task_dir = self.work_dir / name
        task_dir.mkdir(parents=True, exist_ok=True)
        executor_input = self._executor_input(name, task, component, task_dir)
        container = executor["container"]
        key = None
        if self.cache is not None and task.get("cachingOptions", {}).get("enableCache", True):
            types = {k: v["parameterType"] for k, v in component.get(
                "outputDefinitions", {}).get("parameters", {}).items()}
            key = fingerprint(cache_key(executor_input, types, container["image"],
                                        container["command"] + container.get("args", [])))
            hit = self.cache.get(key)
            if hit is not None:
                return TaskResult(name, time.monotonic() - started, hit["outputs"], None,
                                  hit["parameters"], cached=True)
        log = task_dir / "task.log"
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        if hook and self.run_pre_cache_check:
            self._exec(name, hook["command"], hook.get("args", []), executor_input, log)
        self._exec(name, container["command"], container.get("args", []), executor_input, log)
        outputs, parameters = self._read_outputs(executor_input)
        result = TaskResult(name, time.monotonic() - started, outputs, log, parameters)
        if key is not None:
            self.cache.put(key, result)
        return result

    def _executor_input(self, name: str, task: Dict[str, Any], component: Dict[str, Any],
                        task_dir: Path) -> Dict[str, Any]:
        inputs = task.get("inputs", {})
        artifacts = {key: {"artifacts": self._upstream(spec["taskOutputArtifact"])}
                     for key, spec in inputs.get("artifacts", {}).items()}
        parameters = {key: self._parameter(spec)
                      for key, spec in inputs.get("parameters", {}).items()}
        output_parameters = {
            key: {"outputFile": str(task_dir / "parameters" / key)}
            for key in component.get("outputDefinitions", {}).get("parameters", {})}
        root = self.spec["defaultPipelineRoot"]
        base = f"{root}/{self.spec['pipelineInfo']['name']}/{self.run_id}/{name}"
        outputs = {
            key: {"artifacts": [{
                "name": f"local/{self.run_id}/{name}/{key}",
                "type": definition["artifactType"],
                "uri": f"{base}/{key}",
                "metadata": definition.get("metadata", {}),
            }]}
            for key, definition in component.get("outputDefinitions", {})
            .get("artifacts", {}).items()}
        return {"inputs": {"artifacts": artifacts, "parameterValues": parameters},
                "outputs": {"artifacts": outputs, "parameters": output_parameters,
                            "outputFile": str(task_dir / "executor_output.json")}}

    def _upstream(self, ref: Dict[str, str]) -> List[Dict[str, Any]]:
        producer = self.results.get(ref["producerTask"])
        if producer is None:
            raise TaskFailed(f"upstream task {ref['producerTask']} has not run")
        return [producer.outputs[ref["outputArtifactKey"]]]

    def _parameter(self, spec: Dict[str, Any]) -> Any:
        if "runtimeValue" in spec:
            return spec["runtimeValue"]["constant"]
        if "componentInputParameter" in spec:
            return self.parameters[spec["componentInputParameter"]]
        if "taskOutputParameter" in spec:
            ref = spec["taskOutputParameter"]
            producer = self.results.get(ref["producerTask"])
            if producer is None:
                raise TaskFailed(f"upstream task {ref['producerTask']} has not run")
            return producer.parameters[ref["outputParameterKey"]]
        raise TaskFailed(f"unsupported input parameter source {spec}")

    def _exec(self, name: str, command: List[str], args: List[str],
              executor_input: Dict[str, Any], log: Path) -> None:
        if command[0] != "python":
            raise TaskFailed(f"{name}: expected a python command, got {command}")
        serialized = json.dumps(executor_input)
        argv = [self.python, *command[1:], *(serialized if a == "{{$}}" else a for a in args)]
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        with open(log, "a") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=log.parent)
        if done.returncode != 0:
            tail = log.read_text()[-3000:]
            raise TaskFailed(f"{name}: {' '.join(command)} exited {done.returncode}:\n{tail}")

    @staticmethod
    def _read_outputs(executor_input: Dict[str, Any]
                      ) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any]]:
        """Output artifacts as downstream tasks get them (KFP records the metadata the
        executor reported and passes it on with the artifact), and output parameters."""
        with open(executor_input["outputs"]["outputFile"]) as f:
            executor_output = json.load(f)
        reported = executor_output.get("artifacts", {})
        outputs = {}
        for key, declared in executor_input["outputs"]["artifacts"].items():
            artifact = dict(declared["artifacts"][0])
            for produced in reported.get(key, {}).get("artifacts", [])[:1]:
                artifact["metadata"] = {**artifact["metadata"], **produced.get("metadata", {})}
            outputs[key] = artifact
        parameters = dict(executor_output.get("parameterValues", {}))
        missing = set(executor_input["outputs"]["parameters"]) - set(parameters)
        if missing:
            raise TaskFailed(f"the executor reported no value for output parameters {missing}")
        return outputs, parameters
