"""deploy/systemd/tollgate.service: `systemd-analyze verify` prints nothing (an unknown or misspelt directive is only a
warning there, so any output fails), the offline security exposure stays low, and the settings the deployment guide
relies on are present. Skipped with the reason printed where systemd-analyze is missing."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(ROOT, "deploy", "systemd", "tollgate.service")


def settings():
    values = {}
    with open(UNIT) as f:
        for line in f:
            match = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
            if match:
                values.setdefault(match.group(1), []).append(match.group(2))
    return values


@pytest.fixture
def unit_copy():
    """The unit with ExecStart pointed at an executable that exists here (verify checks that it does)."""
    directory = tempfile.mkdtemp(prefix="tollgate-unit-")
    with open(UNIT) as f:
        text = f.read().replace("/usr/local/bin/tollgate serve", "/bin/true serve")
    path = os.path.join(directory, "tollgate.service")
    with open(path, "w") as f:
        f.write(text)
    yield path
    shutil.rmtree(directory)


def test_systemd_analyze_verify_is_silent(unit_copy):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine: the unit was not verified")
    result = subprocess.run(["systemd-analyze", "verify", unit_copy], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_security_exposure_is_low(unit_copy):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine: the unit's exposure was not measured")
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", unit_copy],
                            capture_output=True, text=True)
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert exposure, result.stdout[-500:] + result.stderr
    assert float(exposure.group(1)) <= 2.0, result.stdout[-2000:]


def test_unit_has_the_settings_the_guide_relies_on():
    s = settings()
    assert s["ProtectSystem"] == ["strict"]
    assert s["StateDirectory"] == ["tollgate"]
    assert s["Restart"] == ["on-failure"]
    assert int(s["LimitNOFILE"][0]) >= 65536
    assert s["DynamicUser"] == ["yes"] or s.get("User", ["root"])[0] != "root"
    assert "TOLLGATE_DATA_DIR=/var/lib/tollgate" in s["Environment"], "the spool must live in the StateDirectory"
    drain = next(int(v.split("=")[1]) for v in s["Environment"] if v.startswith("TOLLGATE_DRAIN_TIMEOUT_SECONDS="))
    assert int(s["TimeoutStopSec"][0]) > drain, "systemd would kill a drain that is still on time"
