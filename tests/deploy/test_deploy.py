"""deploy/: the systemd units and the install script, staged into temporary roots (never into /).

The package is installed from a wheel built once from this checkout with --no-deps: what is under
test is what install.sh does with it (layout, config, model, units, idempotence), not pip's
dependency resolution (deploy/emulate/arm64-check.sh does a full install on an arm64 Debian 12).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stream.config import load_config, to_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
UNIT_DIR = DEPLOY / "systemd"
SERVICES = ("acquire", "infer", "sink")
PREFIX = "/opt/signstream"
CONFIG_PATH = "/etc/signstream/signstream.toml"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation: pip fetches the build backend pyproject.toml asks for (the dev venv's own
    # setuptools may be older), as it does in every install.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(out), str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=180)
    (built,) = out.glob("signstream-*.whl")
    return built


def write_model(directory: Path, payload: bytes) -> Path:
    """A model directory as the installer sees it: files plus a card holding their sha256."""
    directory.mkdir(parents=True)
    (directory / "student_float32.tflite").write_bytes(payload)
    card = {"model_id": "deploy-test",
            "files": {"float32": {"path": "student_float32.tflite",
                                  "sha256": hashlib.sha256(payload).hexdigest()}}}
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


def run_install(root: Path, wheel: Path, model: Path, *extra: str, script: str = "install.sh"):
    return subprocess.run(
        ["bash", str(DEPLOY / script), "--root", str(root), "--package", str(wheel),
         "--model-dir", str(model), "--python", sys.executable,
         "--pip-option=--no-deps", "--pip-option=--no-index", *extra],
        capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("model") / "student", b"model one" * 100)


@pytest.fixture(scope="module")
def staged(tmp_path_factory, wheel, model_dir):
    """One staged install shared by the read-only checks below."""
    root = tmp_path_factory.mktemp("root")
    result = run_install(root, wheel, model_dir)
    assert result.returncode == 0, result.stderr
    return root, result


def snapshot(root: Path) -> dict:
    """Everything a change could touch: type, mode, owner, size, mtime, content, link target."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        entry = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                 info.st_mtime_ns)
        if path.is_symlink():
            entry += (os.readlink(path),)
        elif path.is_file():
            entry += (info.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        state[str(path.relative_to(root))] = entry
    return state


def unit_lines(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in a unit file."""
    section, lines = "", []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        lines.append((section, key.strip(), value.strip()))
    return lines


def unit_values(path: Path, key: str) -> list[str]:
    return [value for _, name, value in unit_lines(path) if name == key]


# ---------------------------------------------------------------- units


def test_every_exec_start_is_an_installed_console_script_with_the_documented_config(staged):
    root, _ = staged
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    documented = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    assert CONFIG_PATH in documented
    for service in SERVICES:
        (exec_start,) = unit_values(UNIT_DIR / f"signstream-{service}.service", "ExecStart")
        program, *arguments = shlex.split(exec_start)
        assert Path(program).parent == Path(PREFIX) / "venv" / "bin"
        assert Path(program).name in scripts, f"{program} is not a console script in pyproject.toml"
        assert arguments == ["--config", CONFIG_PATH]
        # The staged install has that script and that config, and the config loads.
        assert os.access(root / program.lstrip("/"), os.X_OK)
    config = load_config(root / CONFIG_PATH.lstrip("/"))
    assert config.model.card == f"{PREFIX}/models/student/model_card.json"
    assert (root / config.model.card.lstrip("/")).is_file()


def test_units_keep_the_hardening_and_restart_policy_we_document():
    for service in SERVICES:
        unit = UNIT_DIR / f"signstream-{service}.service"
        values = {key: value for _, key, value in unit_lines(unit)}
        assert values["User"] == "signstream" and values["Restart"] == "on-failure"
        assert values["RestartPreventExitStatus"] == "2"        # config errors: do not spin
        for key, expected in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                              ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                              ("PrivateDevices", "yes"),
                              ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK")]:
            assert values[key] == expected, f"{unit.name}: {key}"
        # libzmq needs sched_setscheduler (@resources) for its I/O threads: never deny it.
        assert unit_values(unit, "SystemCallFilter") == ["@system-service", "~@privileged"]
        # numba's JIT needs writable+executable memory: this must never be switched on.
        assert "MemoryDenyWriteExecute" not in values
        assert "NUMBA_CACHE_DIR=/var/cache/signstream/numba" in unit_values(unit, "Environment")
        # The designed filters are cached beside (stream.dsp.design_cache): a warm start imports no scipy.
        assert "SIGNSTREAM_CACHE_DIR=/var/cache/signstream" in unit_values(unit, "Environment")
        assert "signstream" in values["CacheDirectory"].split()
        assert "signstream/numba" in values["CacheDirectory"].split()


def test_units_pass_systemd_analyze_verify(staged, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd)")
    root, _ = staged
    # verify checks that ExecStart= exists: point the units at the staged venv's scripts.
    for unit in UNIT_DIR.iterdir():
        text = unit.read_text().replace(f"{PREFIX}/venv/", f"{root}{PREFIX}/venv/")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run([analyze, "verify", "--man=no", *sorted(map(str, tmp_path.iterdir()))],
                            capture_output=True, text=True, timeout=60)
    # Unknown keys (e.g. RestartSteps= before systemd 254) are only warnings: refuse them too.
    assert result.returncode == 0 and result.stderr == "", result.stderr


# ---------------------------------------------------------------- install.sh


def test_second_install_changes_nothing(staged, wheel, model_dir):
    root, first = staged
    assert "changed" in first.stdout
    before = snapshot(root)
    again = run_install(root, wheel, model_dir)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert snapshot(root) == before


def test_installed_layout_and_config(staged):
    root, _ = staged
    venv = root / PREFIX.lstrip("/") / "venv"
    assert (venv / "bin" / "python").exists()
    link = root / PREFIX.lstrip("/") / "models" / "student"
    assert link.is_symlink() and (link / "model_card.json").is_file()
    for directory, mode in [("var/cache/signstream/numba", 0o750), ("var/cache/signstream/designs", 0o750), ("var/lib/signstream", 0o750),
                            ("etc/signstream", 0o750)]:
        assert stat.S_IMODE((root / directory).stat().st_mode) == mode, directory
    assert stat.S_IMODE((root / CONFIG_PATH.lstrip("/")).stat().st_mode) == 0o640
    # The written config is the shipped defaults with only the two install paths changed.
    installed = to_dict(load_config(root / CONFIG_PATH.lstrip("/")))
    shipped = to_dict(load_config(None))
    assert installed["record"]["out_dir"] == "/var/lib/signstream/recordings"
    for table in (installed, shipped):
        table["model"].pop("card"), table["record"].pop("out_dir"), table.pop("base_dir", None)
    assert installed == shipped
    for service in SERVICES:
        assert (root / "etc/systemd/system" / f"signstream-{service}.service").is_file()
    assert not any(venv.glob("lib/python*/site-packages/tensorflow"))


def test_model_update_switches_the_link_keeps_the_config_and_refuses_bad_models(tmp_path, wheel,
                                                                               model_dir):
    root = tmp_path / "root"
    assert run_install(root, wheel, model_dir, "--no-systemd").returncode == 0
    config = root / CONFIG_PATH.lstrip("/")
    config.write_text(config.read_text() + "# edited by the operator\n")
    edited = config.read_bytes()
    models = root / PREFIX.lstrip("/") / "models"
    first_target = os.readlink(models / "student")

    tampered = write_model(tmp_path / "tampered", b"model two" * 100)
    (tampered / "student_float32.tflite").write_bytes(b"not what the card says")
    refused = run_install(root, wheel, tampered, "--no-systemd")
    assert refused.returncode == 1 and "does not match the card" in refused.stderr
    assert os.readlink(models / "student") == first_target    # the running model is untouched

    second = write_model(tmp_path / "second", b"model two" * 100)
    updated = run_install(root, wheel, second, "--no-systemd")
    assert updated.returncode == 0, updated.stderr
    assert os.readlink(models / "student") != first_target
    assert (models / "student" / "student_float32.tflite").read_bytes() == b"model two" * 100
    assert not (models / first_target).exists()              # only the current model is kept
    assert config.read_bytes() == edited                      # the user's config is never rewritten
    assert "kept your" in updated.stdout


def test_no_systemd_mode_installs_no_units_and_tensorflow_is_refused(tmp_path, wheel, model_dir):
    result = run_install(tmp_path, wheel, model_dir, "--no-systemd")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "etc/systemd").exists()
    assert (tmp_path / CONFIG_PATH.lstrip("/")).is_file()
    # The runtime must never carry TensorFlow: a venv that has it is refused.
    (site_packages,) = (tmp_path / PREFIX.lstrip("/") / "venv").glob("lib/python*/site-packages")
    (site_packages / "tensorflow").mkdir()
    (site_packages / "tensorflow" / "__init__.py").write_text("")
    result = run_install(tmp_path, wheel, model_dir, "--no-systemd")
    assert result.returncode == 1 and "TensorFlow" in result.stderr


def test_uninstall_removes_the_software_and_keeps_config_unless_purged(tmp_path, wheel, model_dir):
    assert run_install(tmp_path, wheel, model_dir).returncode == 0
    uninstall = [str(DEPLOY / "uninstall.sh"), "--root", str(tmp_path)]
    result = subprocess.run(uninstall, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / PREFIX.lstrip("/")).exists()
    assert not list((tmp_path / "etc/systemd/system").glob("signstream*"))
    assert not (tmp_path / "var/cache/signstream").exists()
    assert (tmp_path / CONFIG_PATH.lstrip("/")).is_file()
    result = subprocess.run([*uninstall, "--purge"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "etc/signstream").exists() and not (tmp_path / "var/lib/signstream").exists()


def test_install_rejects_unknown_options_and_relative_prefix(tmp_path):
    result = subprocess.run([str(DEPLOY / "install.sh"), "--root", str(tmp_path), "--bogus"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "unknown option '--bogus'" in result.stderr
    result = subprocess.run([str(DEPLOY / "install.sh"), "--root", str(tmp_path), "--prefix", "opt"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "--prefix must be absolute" in result.stderr


def test_the_speech_unit_is_installed_only_when_asked_and_stays_idempotent(tmp_path, wheel, model_dir, staged):
    staged_root, _ = staged
    assert not (staged_root / "etc/systemd/system/signstream-speak.service").exists()   # not by default
    result = run_install(tmp_path, wheel, model_dir, "--with-speak")
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "etc/systemd/system/signstream-speak.service"
    (exec_start,) = unit_values(unit, "ExecStart")
    assert shlex.split(exec_start) == [f"{PREFIX}/venv/bin/stream-speak", "--config", CONFIG_PATH]
    assert os.access(tmp_path / PREFIX.lstrip("/") / "venv/bin/stream-speak", os.X_OK)
    values = {key: value for _, key, value in unit_lines(unit)}
    # The sound cards and nothing else; the rest of the hardening as the other units.
    assert values["DevicePolicy"] == "closed" and values["DeviceAllow"] == "char-alsa rw"
    assert values["SupplementaryGroups"] == "audio" and "PrivateDevices" not in values
    assert values["User"] == "signstream" and values["RestartPreventExitStatus"] == "2"
    before = snapshot(tmp_path)
    again = run_install(tmp_path, wheel, model_dir, "--with-speak")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout + again.stderr
    assert snapshot(tmp_path) == before
    uninstall = subprocess.run([str(DEPLOY / "uninstall.sh"), "--root", str(tmp_path)], capture_output=True, text=True,
                               timeout=60)
    assert uninstall.returncode == 0 and not unit.exists()


def test_single_process_mode_installs_the_pipeline_unit_instead_and_switches_back(tmp_path, wheel, model_dir):
    units = tmp_path / "etc/systemd/system"
    result = run_install(tmp_path, wheel, model_dir, "--single-process", "--with-speak")
    assert result.returncode == 0, result.stderr
    pipeline = units / "signstream-pipeline.service"
    (exec_start,) = unit_values(pipeline, "ExecStart")
    assert shlex.split(exec_start) == [f"{PREFIX}/venv/bin/stream-pipeline", "--config", CONFIG_PATH]
    assert os.access(tmp_path / PREFIX.lstrip("/") / "venv/bin/stream-pipeline", os.X_OK)
    assert unit_values(pipeline, "Conflicts") == ["signstream-acquire.service signstream-infer.service signstream-sink.service"]
    values = {key: value for _, key, value in unit_lines(pipeline)}
    assert values["User"] == "signstream" and values["ProtectSystem"] == "strict" and "ExecReload" in values
    assert not any((units / f"signstream-{name}.service").exists() for name in ("acquire", "infer", "sink"))
    assert unit_values(units / "signstream.target", "Wants") == ["signstream-pipeline.service signstream-speak.service"]
    # stream-speak follows the one process (pulling in stream-sink would stop it: Conflicts=).
    assert unit_values(units / "signstream-speak.service", "Wants") == ["network-online.target signstream-pipeline.service"]
    before = snapshot(tmp_path)
    again = run_install(tmp_path, wheel, model_dir, "--single-process", "--with-speak")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout + again.stderr
    assert snapshot(tmp_path) == before
    back = run_install(tmp_path, wheel, model_dir)
    assert back.returncode == 0 and "removed signstream-pipeline.service (the other mode)" in back.stdout, back.stdout
    assert not pipeline.exists() and all((units / f"signstream-{name}.service").exists() for name in SERVICES)
    assert unit_values(units / "signstream.target", "Wants") == [
        "signstream-acquire.service signstream-infer.service signstream-sink.service"]
