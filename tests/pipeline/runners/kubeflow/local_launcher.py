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
"""
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional


@dataclasses.dataclass
class TaskResult:
    name: str
    seconds: float = 0.0
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    log: Optional[Path] = None


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
                 previous: Optional[Dict[str, "TaskResult"]] = None):
        self.spec = spec
        self.work_dir = work_dir
        self.python = python
        self.run_pre_cache_check = run_pre_cache_check
        self.run_id = uuid.uuid4().hex[:8]
        self.parameters = {name: p.get("defaultValue")
                           for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}
        self.parameters.update(parameter_values)
        self.results: Dict[str, TaskResult] = dict(previous or {})

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
        log = task_dir / "task.log"
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        if hook and self.run_pre_cache_check:
            self._exec(name, hook["command"], hook.get("args", []), executor_input, log)
        self._exec(name, container["command"], container.get("args", []), executor_input, log)
        outputs = self._read_outputs(executor_input)
        return TaskResult(name, time.monotonic() - started, outputs, log)

    def _executor_input(self, name: str, task: Dict[str, Any], component: Dict[str, Any],
                        task_dir: Path) -> Dict[str, Any]:
        inputs = task.get("inputs", {})
        artifacts = {key: {"artifacts": self._upstream(spec["taskOutputArtifact"])}
                     for key, spec in inputs.get("artifacts", {}).items()}
        parameters = {key: self._parameter(spec)
                      for key, spec in inputs.get("parameters", {}).items()}
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
                "outputs": {"artifacts": outputs,
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
    def _read_outputs(executor_input: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Output artifacts as downstream tasks get them: KFP records the metadata the
        executor reported and passes it on with the artifact."""
        with open(executor_input["outputs"]["outputFile"]) as f:
            reported = json.load(f).get("artifacts", {})
        outputs = {}
        for key, declared in executor_input["outputs"]["artifacts"].items():
            artifact = dict(declared["artifacts"][0])
            for produced in reported.get(key, {}).get("artifacts", [])[:1]:
                artifact["metadata"] = {**artifact["metadata"], **produced.get("metadata", {})}
            outputs[key] = artifact
        return outputs
