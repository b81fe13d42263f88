"""Reproducibility: the thread count is a setting, every run records its environment, the lock is honoured."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import mlflow
import pytest

from conftest import FAST, ROOT, compose, run_cli

LOCK = ROOT / "requirements.lock"


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_thread_count_from_config_is_what_the_job_trains_with_and_every_run_records_its_environment(project):
    import torch

    from dlzoo.tracking.environment import cpu_isa
    from dlzoo.train import run

    # runtime.threads sets torch's thread count inside the job, whatever the process had, and is recorded
    before = torch.get_num_threads()
    runs = {}
    try:
        for threads, extra in ((1, ["runtime.threads=1"]), (2, [])):  # 2: conf/config.yaml's default
            torch.set_num_threads(3)
            cfg = compose(["experiment=digits_mlp", "trainer.fast_dev_run=true", *FAST, *extra])
            info = run(cfg, project / "out" / f"t{threads}", [])
            assert torch.get_num_threads() == threads
            runs[threads] = _client(project).get_run(info["run_id"])
    finally:
        torch.set_num_threads(before)
    for threads, recorded in runs.items():
        assert recorded.data.params["runtime.threads"] == str(threads)
        assert recorded.data.tags["env.torch_threads"] == str(threads)
    tags = runs[2].data.tags
    assert tags["env.torch"] == torch.__version__
    assert tags["env.lightning"] == metadata.version("lightning")
    assert tags["env.mlflow"] == mlflow.__version__
    assert tags["env.python"].count(".") == 2
    assert tags["env.cpu"] and tags["env.cpu_isa"] == cpu_isa()
    assert tags["env.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert tags["env.gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    # the project copy has no lock of its own: the source checkout's is the one that was in force
    assert tags["env.lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert "env.lock_drift" in tags


def test_bad_thread_count_is_refused_before_training(project):
    r = run_cli(["-m", "dlzoo.train", "runtime.threads=0", "trainer.fast_dev_run=true", *FAST], project)
    assert r.returncode != 0
    assert "runtime.threads=0" in r.stderr and "null or an integer >= 1" in r.stderr
    assert not (project / "mlflow.db").exists() or not _client(project).search_runs(
        [e.experiment_id for e in _client(project).search_experiments()])


def test_cpu_isa_reads_the_vector_flags():
    from dlzoo.tracking import environment as env

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = env.cpu_isa().split(",")
    assert ("AVX2" in isa) == (" avx2" in flags)
    assert ("AVX-512" in isa) == (" avx512f" in flags)
    assert ("AMX" in isa) == (" amx_tile" in flags)


def test_installed_versions_match_the_lock():
    """What `make setup` installs (uv or pip, -c requirements.lock) is what is installed: the key packages'
    versions equal the lock's pins (a CPU or CUDA build's local label, +cpu, aside)."""
    from dlzoo.tracking.environment import KEY_PACKAGES, public, read_lock

    pins = read_lock(LOCK)
    checked = 0
    for name in (*KEY_PACKAGES, "mnist1d", "optuna", "pytest"):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert name in pins, f"{name} is installed but not in {LOCK.name}: run `make lock`"
        assert public(have) == pins[name], f"{name} {have} installed, {pins[name]} in {LOCK.name}"
        checked += 1
    assert checked >= 8


def test_lock_is_a_constraints_file_of_exact_versions_that_pyproject_ranges_admit():
    import tomllib

    from packaging.requirements import Requirement

    from dlzoo.tracking.environment import read_lock

    pins = read_lock(LOCK)
    assert all("+" not in v for v in pins.values())  # torch==2.13.0 matches the CPU and the CUDA builds
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps):
        assert not any(s.operator == "==" and "*" not in s.version for s in dep.specifier), f"exact pin: {dep}"
        name = dep.name.lower()
        if name in pins:
            assert dep.specifier.contains(pins[name], prereleases=True), f"lock {name}=={pins[name]} outside {dep}"
    assert "torch" in pins and "lightning" in pins


@pytest.mark.parametrize("makefile_target", ["setup", "lock"])
def test_makefile_installs_with_the_lock(makefile_target):
    import subprocess

    text = subprocess.run(["make", "-n", "-B", makefile_target], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}).stdout
    if makefile_target == "setup":  # uv with the lock, and pip with the lock should uv fail
        assert "uv pip install -q --compile-bytecode" in text and "-c requirements.lock -e '.[dev]'" in text
        assert "pip install -q -c requirements.lock -e '.[dev]'" in text
    else:
        assert "pip freeze --exclude-editable" in text and "requirements.lock.new" in text


def _data_project(tmp_path: Path, lock_lines: list[str]) -> Path:
    import subprocess

    proj = tmp_path / "dataproj"
    (proj / "conf").mkdir(parents=True)
    (proj / "dvc.yaml").write_text("stages: {}\n")
    (proj / "data").mkdir()
    (proj / "data" / "x.txt").write_text("built here\n")
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=proj, check=True)
    subprocess.run(["dvc", "add", "-q", "data"], cwd=proj, check=True)
    (proj / "data" / "x.txt").write_text("built elsewhere, differently\n")  # data/ no longer what data.dvc says
    (proj / "requirements.lock").write_text("# test lock\n\n" + "\n".join(lock_lines) + "\n")
    return proj


def test_data_check_names_the_packages_that_differ_from_the_lock(tmp_path):
    numpy, sklearn = metadata.version("numpy"), metadata.version("scikit-learn")
    proj = _data_project(tmp_path, ["numpy==0.0.1", f"scikit-learn=={sklearn}", "mnist1d==9.9"])
    recorded = (proj / "data.dvc").read_text()
    r = run_cli(["-m", "dlzoo.data.check"], proj, env={"DLZOO_ROOT": str(proj)})
    assert r.returncode != 0
    assert "does not match data.dvc" in r.stderr
    assert f"numpy {numpy} (lock 0.0.1)" in r.stderr
    assert f"mnist1d {metadata.version('mnist1d')} (lock 9.9)" in r.stderr
    assert "scikit-learn" not in r.stderr  # installed at the locked version
    assert (proj / "data.dvc").read_text() == recorded  # restored


def test_data_check_with_the_locked_versions_blames_an_edit(tmp_path):
    proj = _data_project(tmp_path, [f"numpy=={metadata.version('numpy')}"])
    r = run_cli(["-m", "dlzoo.data.check"], proj, env={"DLZOO_ROOT": str(proj)})
    assert r.returncode != 0 and "match requirements.lock, so data/ was probably edited" in r.stderr
