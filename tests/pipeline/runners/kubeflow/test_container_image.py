"""The Dockerfile (no Docker engine here): its project steps replayed on this machine
(COPY through .dockerignore, then the install), and checked as text: pinned Python 3.10
slim base, the lock file, a non-root user, the Keras mode, the project's executors at the
import paths the compiled spec names, and a .dockerignore that keeps them in."""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from cluster_settings import CLUSTER
from pipeline.runners import kubeflow
from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[4]
PROJECT_PACKAGES = ("pipeline", "components", "trainer")


def parse_dockerfile(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> List[Tuple[str, str]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def _args(instructions) -> Dict[str, str]:
    return dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)


def _final_stage(instructions) -> List[Tuple[str, str]]:
    starts = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    return instructions[starts[-1]:]


def _resolve(value: str, args: Dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def _lock_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (REPO / "requirements.lock").read_text(),
                      re.M)
    assert match, f"{package} is not in requirements.lock"
    return match.group(1)


def test_base_is_a_pinned_python_3_10_slim_image(dockerfile):
    args = _args(dockerfile)
    base = _resolve(_final_stage(dockerfile)[0][1].split()[0], args)
    assert re.fullmatch(r"python:3\.10\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_beam_workers_match_the_locked_beam(dockerfile):
    beam = _resolve(dockerfile[[k for k, _ in dockerfile].index("FROM")][1].split()[0],
                    _args(dockerfile))
    assert beam == f"apache/beam_python3.10_sdk:{_lock_version('apache-beam')}"
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in dockerfile


def test_installs_exactly_the_lock_file_then_the_project_without_dependencies(dockerfile):
    stage = _final_stage(dockerfile)
    runs = " && ".join(a for k, a in stage if k == "RUN")
    installs = [shlex.split(cmd.strip()) for cmd in runs.split("&&") if " install " in cmd]
    assert installs, "nothing installed"
    for argv in installs:
        packages = [a for a in argv[argv.index("install") + 1:] if not a.startswith("-")]
        if "-r" in argv:
            assert argv[argv.index("-r") + 1].endswith("/requirements.lock")
        elif len(packages) == 1 and re.fullmatch(r"uv==[\d.]+", packages[0]):
            continue  # the installer itself, pinned
        else:
            assert "--no-deps" in argv, f"{argv}: only the lock may bring dependencies"
            assert "-e" not in argv and "--editable" not in argv
    copies = [a.split() for k, a in stage if k == "COPY" and not a.startswith("--from")]
    assert any(c[0] == "requirements.lock" for c in copies)
    for package in PROJECT_PACKAGES:
        assert any(c[0] == package for c in copies), f"{package}/ is not copied"


def test_runs_as_a_numeric_non_root_user_with_the_keras_mode(dockerfile):
    stage = _final_stage(dockerfile)
    users = [a for k, a in stage if k == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "runAsNonRoot needs a numeric, non-zero UID"
    env = " ".join(a for k, a in stage if k == "ENV")
    assert re.search(r"(^|\s)TF_USE_LEGACY_KERAS=1(\s|$)", env)
    # Everything after USER runs unprivileged; nothing may switch back.
    assert all(k != "USER" or a.split(":")[0] != "0" for k, a in stage)


def _ignored(path: str, patterns: List[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.rstrip("/") + "/*")
               or fnmatch.fnmatch(path, "*/" + p.lstrip("*/")) for p in patterns)


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)
    copied = ["requirements.lock", "setup.py"] + [
        str(p.relative_to(REPO)) for package in PROJECT_PACKAGES
        for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts]
    assert not [p for p in copied if _ignored(p, patterns)]
    for heavy in (".venv/bin/python", ".git/HEAD", "imgpipe_home/metadata/x.sqlite",
                  "tests/conftest.py", "pipeline/__pycache__/cli.cpython-310.pyc"):
        assert _ignored(heavy, patterns), heavy


@pytest.fixture(scope="module")
def spec_paths() -> set:
    """The project's import paths the compiled spec names (executors, run_fn, ...)."""
    job = kubeflow.compile_spec(kubeflow.cluster_config(load_config(overrides=CLUSTER)))
    text = str(job["pipelineSpec"])
    paths = set(re.findall(r"'--executor_class_path', '([\w.]+)'", text))
    paths |= set(re.findall(r"'constant': '((?:trainer|components|pipeline)\.[\w.]+)'", text))
    project = {p for p in paths if p.split(".")[0] in PROJECT_PACKAGES}
    assert {"components.image_example_gen.executor.Executor", "trainer.task.run_fn",
            "trainer.preprocessing.preprocessing_fn"} <= project
    return project


def test_every_project_executor_in_the_spec_is_copied_into_the_image(dockerfile, spec_paths):
    """The spec names executors by import path; those modules must be in the image."""
    copied = {a.split()[0] for k, a in _final_stage(dockerfile) if k == "COPY"}
    for path in spec_paths:
        module_file = REPO / Path(*path.split(".")[:-1]).with_suffix(".py")
        assert module_file.is_file(), path
        assert path.split(".")[0] in copied, f"{path}: its package is not copied"


def _build_context(root: Path, patterns: List[str]) -> None:
    """What `docker build .` sends: the checkout less .dockerignore's matches."""
    for folder, dirs, files in os.walk(REPO):
        relative = os.path.relpath(folder, REPO)
        dirs[:] = [d for d in dirs if not _ignored(os.path.normpath(os.path.join(relative, d)),
                                                   patterns)]
        for name in files:
            path = os.path.normpath(os.path.join(relative, name))
            if not _ignored(path, patterns):
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / path, root / path)


def test_the_project_installs_from_what_the_dockerfile_copies(dockerfile, spec_paths, tmp_path):
    """The final stage's project steps, replayed here: its COPY instructions from the build
    context (.dockerignore applied) into a scratch filesystem, then its install command
    (pip via uv, no dependencies), into a fresh folder instead of the system's. Every
    module the spec runs then resolves from that install, in a process that does not see
    this checkout."""
    context, image, site = tmp_path / "context", tmp_path / "image", tmp_path / "site"
    _build_context(context, [line.strip() for line in (REPO / ".dockerignore").read_text()
                             .splitlines() if line.strip() and not line.startswith("#")])
    stage = _final_stage(dockerfile)
    for source, target in (a.split() for k, a in stage if k == "COPY"
                           and not a.startswith("--from") and a.split()[0] != "requirements.lock"):
        destination = image / target.lstrip("/")
        if (context / source).is_dir():
            shutil.copytree(context / source, destination)
        else:
            destination = destination / source if target.endswith("/") else destination
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / source, destination)
    installs = [shlex.split(cmd) for k, a in stage if k == "RUN" for cmd in a.split("&&")
                if "--no-deps" in cmd]
    assert len(installs) == 1, installs
    argv = installs[0]
    assert argv[:3] == ["uv", "pip", "install"] and "--system" in argv
    source = argv[-1]
    assert source.startswith("/") and (image / source.lstrip("/") / "setup.py").is_file()
    # The image's system Python becomes a target folder; the build backend (setuptools)
    # comes from the venv, as the image's comes from the lock.
    command = [str(Path(sys.prefix) / "bin" / "uv"), *argv[1:-1], "--python", sys.executable,
               "--target", str(site), "--no-build-isolation", str(image / source.lstrip("/"))]
    command.remove("--system")
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    assert (site / "pipeline" / "configs" / "demo.yaml").is_file()  # package data

    modules = sorted({p.rsplit(".", 1)[0] for p in spec_paths})
    probe = ("import importlib.util, json, sys\n"
             "print(json.dumps({m: importlib.util.find_spec(m).origin for m in sys.argv[1:]}))")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    found = subprocess.run([sys.executable, "-c", probe, *modules], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True, timeout=300)
    origins = json.loads(found.stdout.strip().splitlines()[-1])
    assert set(origins) == set(modules)
    for module, origin in origins.items():
        assert Path(origin).is_relative_to(site), (module, origin)
