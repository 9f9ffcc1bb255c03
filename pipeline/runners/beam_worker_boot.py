#!/usr/bin/env python3
"""A Python SDK worker boot for a local EXTERNAL worker pool, doing what the Beam SDK
container's boot program does on a Flink or Spark cluster: the worker gets this project's
code only from what the job staged, never from this checkout.

    python -m apache_beam.runners.worker.worker_pool_main --service_port=50000 \\
        --container_executable=pipeline/runners/beam_worker_boot.py   # with the venv's bin on PATH

For each worker the pool starts, it asks the provision service for the pipeline options
and the staged artifacts, fetches them through the artifact service (as a remote worker
must: the job server's files are not on its disk), installs the staged sdist of setup.py
(`workflow.tar.gz`) into the worker's own directory, and execs sdk_worker_main with the
environment the SDK container's boot sets. It imports only Beam and the standard library:
it runs as a file, never as part of the project.
"""
import argparse
import hashlib
import os
import site
import subprocess
import sys
import tempfile

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (beam_artifact_api_pb2, beam_artifact_api_pb2_grpc,
                                         beam_provision_api_pb2, beam_provision_api_pb2_grpc,
                                         beam_runner_api_pb2, endpoints_pb2)
from google.protobuf import json_format

WORKFLOW_TARBALL = "workflow.tar.gz"  # the name Beam's stager gives the --setup_file sdist


def log(message: str) -> None:
    print(f"beam_worker_boot: {message}", file=sys.stderr, flush=True)


def provision_info(endpoint: str, worker_id: str) -> beam_provision_api_pb2.ProvisionInfo:
    # The runner finds the worker's provision info by the worker_id metadata.
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        return stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                     metadata=[("worker_id", worker_id)]).info


def retrieve_artifacts(endpoint: str, dependencies, staged_dir: str) -> list:
    """Each staged dependency fetched through the artifact service, under its staged name."""
    names = []
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for artifact in dependencies:
            if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
                raise RuntimeError(f"unsupported artifact role {artifact.role_urn}")
            name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                artifact.role_payload).staged_name
            digest = hashlib.sha256()
            with open(os.path.join(staged_dir, name), "wb") as out:
                for chunk in stub.GetArtifact(
                        beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact)):
                    digest.update(chunk.data)
                    out.write(chunk.data)
            if artifact.type_urn == common_urns.artifact_types.FILE.urn:
                expected = beam_runner_api_pb2.ArtifactFilePayload.FromString(
                    artifact.type_payload).sha256
                if expected and expected != digest.hexdigest():
                    raise RuntimeError(f"staged {name}: sha256 mismatch")
            names.append(name)
    return names


def install_workflow(tarball: str, target: str) -> None:
    # Offline and without dependencies: the third-party packages are the environment's
    # (the SDK image's, here the venv's); only the project's own code is staged.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--no-build-isolation", "--disable-pip-version-check",
                    "--target", target, tarball], check=True, stdout=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint",
                 "control_endpoint"):
        parser.add_argument(f"--{flag}", required=True)
    parser.add_argument("--semi_persist_dir", default="")
    args, _ = parser.parse_known_args(argv)

    work_dir = args.semi_persist_dir or tempfile.mkdtemp(prefix=f"beam-worker-{args.id}-")
    staged_dir, code_dir = os.path.join(work_dir, "staged"), os.path.join(work_dir, "code")
    os.makedirs(staged_dir, exist_ok=True)
    info = provision_info(args.provision_endpoint, args.id)
    artifact_endpoint = info.artifact_endpoint.url or args.artifact_endpoint
    staged = retrieve_artifacts(artifact_endpoint, info.dependencies, staged_dir)
    log(f"worker {args.id}: retrieved {sorted(staged)} into {staged_dir}")
    if WORKFLOW_TARBALL in staged:
        install_workflow(os.path.join(staged_dir, WORKFLOW_TARBALL), code_dir)
        log(f"worker {args.id}: installed {WORKFLOW_TARBALL} into {code_dir}")

    def descriptor(url: str) -> str:
        return str(endpoints_pb2.ApiServiceDescriptor(url=url))

    env = dict(os.environ)
    env.update({
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "SEMI_PERSISTENT_DIRECTORY": work_dir,
        "LOGGING_API_SERVICE_DESCRIPTOR": descriptor(args.logging_endpoint),
        "CONTROL_API_SERVICE_DESCRIPTOR": descriptor(args.control_endpoint),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
        # The project image sets it (Dockerfile): TFX 1.16 needs Keras 2.
        "TF_USE_LEGACY_KERAS": "1",
        # -S below skips site, and with it every .pth file: an editable install of this
        # project (a .pth import hook) stays invisible; its third-party packages, plain
        # directories, are put back by hand after the staged code.
        "PYTHONPATH": os.pathsep.join([code_dir, *site.getsitepackages()]),
    })
    if info.status_endpoint.url:
        env["STATUS_API_SERVICE_DESCRIPTOR"] = descriptor(info.status_endpoint.url)
    # The pool pipes the worker's stdout and never reads it: send it to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.chdir(work_dir)  # the cwd is on sys.path: not the checkout
    os.execve(sys.executable, [sys.executable, "-S", "-m",
                               "apache_beam.runners.worker.sdk_worker_main"], env)


if __name__ == "__main__":
    main()
