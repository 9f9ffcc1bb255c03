"""kubernetes/: each overlay builds with kustomize, validates against the Kubernetes
schemas (offline, strict), and every pod follows the security rules."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.runners import kubeflow
from pipeline.config import load_config

KUBERNETES = Path(__file__).resolve().parents[2] / "kubernetes"
TOOLS = Path(sys.prefix) / "tools"  # `make` installs requirements-tools.txt there
OVERLAYS = ("dev", "prod")
# Kubernetes versions to validate against: the oldest with CronJob.spec.timeZone GA, and
# the newest the schema package ships.
K8S_VERSIONS = ("1.27", "latest")
SUBMITTER_VERBS = {("pipelines", "get"), ("pipelines", "list"), ("pipelines", "create"),
                   ("pipelines/versions", "get"), ("pipelines/versions", "list"),
                   ("pipelines/versions", "create"), ("experiments", "get"),
                   ("experiments", "list"), ("experiments", "create"), ("runs", "create")}


def _build(overlay: str) -> list:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    out = subprocess.run([kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
                         check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, _build(request.param)


def _pod_specs(docs):
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] in ("Job", "Deployment", "StatefulSet", "DaemonSet"):
            yield doc["metadata"]["name"], spec["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], spec


def _kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_overlay_validates_against_the_kubernetes_schemas(rendered):
    if str(TOOLS) not in sys.path:
        sys.path.append(str(TOOLS))  # last: the venv's own packages keep precedence
    import kubernetes_validate
    overlay, docs = rendered
    assert {d["kind"] for d in docs} == {"Namespace", "ServiceAccount", "Role", "RoleBinding",
                                         "ConfigMap", "CronJob", "Secret"}
    for version in K8S_VERSIONS:
        version = kubernetes_validate.latest_version() if version == "latest" else version
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_every_pod_is_locked_down_and_sized(rendered):
    overlay, docs = rendered
    pods = list(_pod_specs(docs))
    assert pods, f"{overlay}: no pods"
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security.get("privileged", False) is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert not security["capabilities"].get("add"), name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)


def test_submitter_may_do_only_what_submit_needs(rendered):
    overlay, docs = rendered
    (role,) = _kinds(docs, "Role")
    granted = {(resource, verb) for rule in role["rules"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert all(rule["apiGroups"] == ["pipelines.kubeflow.org"] for rule in role["rules"])
    assert granted == SUBMITTER_VERBS
    (binding,) = _kinds(docs, "RoleBinding")
    (namespace,) = _kinds(docs, "Namespace")
    (account,) = _kinds(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": namespace["metadata"]["name"]}]
    assert all(d["metadata"].get("namespace", namespace["metadata"]["name"]) ==
               namespace["metadata"]["name"] for d in docs)


def test_cronjob_submits_the_configmaps_config_with_the_overlays_image(rendered):
    overlay, docs = rendered
    (cronjob,) = _kinds(docs, "CronJob")
    (configmap,) = _kinds(docs, "ConfigMap")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:2] == ["imgpipe", "submit"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    config_path = container["command"][container["command"].index("--config") + 1]
    assert config_path == f"{mounts['config']}/pipeline.yaml"
    token = volumes["kfp-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "pipelines.kubeflow.org"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"

    config_file = KUBERNETES / "overlays" / overlay / "pipeline.yaml"
    assert yaml.safe_load(configmap["data"]["pipeline.yaml"]) == \
        yaml.safe_load(config_file.read_text())
    config = kubeflow.cluster_config(load_config(str(config_file)))  # compiles as is
    assert config.kubeflow.image == container["image"]
    assert config.kubeflow.pipeline_root.startswith(("gs://", "s3://", "minio://"))


def test_dev_is_suspended_and_prod_runs_daily(rendered):
    overlay, docs = rendered
    (cronjob,) = _kinds(docs, "CronJob")
    assert cronjob["spec"]["suspend"] is (overlay == "dev")
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
