"""The Debian package (`./setup.sh deb`): installed, run, upgraded, removed, purged.

The tests marked `deb` install dist/agentx-lb_<version>_all.deb on this machine
with apt, so they run only as root and only when that .deb was built; otherwise
they are skipped with the reason. Under CI (`CI=true`, where .ci/run builds the
package first) a missing .deb or root is a failure, never a skip.

They share one installation and run in file order: install, check the layout
and the unit, run the installed agent as user agentx-lb against the emulator
and a private snmpd, reinstall, downgrade to a previous version and upgrade
back, remove, purge. The machine is left as it was found: the module fixture
purges the package at teardown whatever happened, and deletes group vpp if the
package created it.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentharness import SCALARS, VIP_ENTRY, parse_walk, wait_until
from agentx_lb import __version__
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd, SnmpError
from test_systemd import MAX_EXPOSURE, security_exposure, unit_settings

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "dist"
PACKAGE = "agentx-lb"
USER = "agentx-lb"
COMMAND = Path("/usr/bin/agentx-lb")
VENV = Path("/usr/lib/agentx-lb")
UNIT = Path("/lib/systemd/system/agentx-lb.service")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/agentx-lb.service")
CONFIG = Path("/etc/agentx-lb/agentx-lb.toml")
STATE = Path("/var/lib/agentx-lb")
MIB = Path("/usr/share/snmp/mibs/IPNG-VPP-LB-MIB.txt")
# Everything the package puts on the machine, besides users and groups.
LEFTOVERS = (
    COMMAND, VENV, UNIT, WANTS, CONFIG.parent, STATE, MIB,
    Path("/usr/share/doc/agentx-lb"), Path("/usr/share/man/man1/agentx-lb.1.gz"),
    Path("/var/lib/systemd/deb-systemd-helper-enabled/agentx-lb.service.dsh-also"),
    Path("/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/agentx-lb.service"),
)  # fmt: skip
APT_TIMEOUT_S = 300
# The operator's edit that upgrades must keep (the file lists every key).
DEFAULT_LINE, EDITED_LINE = 'log_level = "info"', 'log_level = "debug"'

deb = pytest.mark.deb


def test_changelog_is_the_package_version() -> None:
    # The .deb's version comes from debian/changelog; the code's from __init__.
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    match = re.match(r"agentx-lb \(([^)]+)\) ", first)
    assert match, first
    assert match.group(1) == __version__, "add a debian/changelog entry for the new version"


# ---------------------------------------------------------------- helpers


def _cannot(reason: str) -> None:
    """Skip, except under CI: there the package test must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def run(
    *cmd: str | Path, ok: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if ok:
        assert proc.returncode == 0, f"{cmd} exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def apt_get(*args: str | Path) -> str:
    """apt-get, non-interactive (a conffile prompt fails it: stdin is /dev/null)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=120", *map(str, args)]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
        timeout=APT_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{cmd} exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def dpkg_status() -> tuple[str, str]:
    """(dpkg status, version) of the package; ("", "") when dpkg knows nothing of it."""
    proc = run("dpkg-query", "-W", "-f=${Status}|${Version}", PACKAGE, ok=False)
    if proc.returncode != 0:
        return "", ""
    status, _, version = proc.stdout.partition("|")
    return status, version


def field(name: str) -> str:
    return run("dpkg-query", "-W", f"-f=${{{name}}}", PACKAGE).stdout


def has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def purge() -> None:
    if dpkg_status()[0]:
        apt_get("purge", PACKAGE)


# ---------------------------------------------------------------- the installation


@pytest.fixture(scope="module")
def package() -> Path:
    """The built .deb, when this machine may install it."""
    if os.geteuid() != 0:
        _cannot("the package tests install a .deb with apt: run them as root")
    found = sorted(DIST.glob(f"agentx-lb_{__version__}_*.deb"))
    if not found:
        _cannot(f"no dist/agentx-lb_{__version__}_*.deb: build it with ./setup.sh deb")
    for tool in ("apt-get", "dpkg-deb", "setpriv", "systemd-analyze"):
        if shutil.which(tool) is None:
            _cannot(f"{tool} not found")
    if dpkg_status()[0]:
        _cannot(f"{PACKAGE} is already installed here ({dpkg_status()}): not touching it")
    if has_user(USER):
        _cannot(f"user {USER} exists (a hand install?): purging would delete it")
    return found[-1]


@pytest.fixture(scope="module")
def installed(package: Path) -> Iterator[Path]:
    """The package installed with apt; purged at teardown, whatever happened."""
    had_vpp = has_group("vpp")
    try:
        apt_get("install", package)
        yield package
    finally:
        try:
            purge()
        finally:
            if not had_vpp and has_group("vpp"):
                run("groupdel", "vpp", ok=False)


@deb
def test_install_layout(installed: Path) -> None:
    status, version = dpkg_status()
    assert (status, version) == ("install ok installed", __version__)
    assert re.search(r"python3 \(>= 3\.11", field("Depends"))
    assert "snmpd" in field("Recommends")
    assert "snmpd" not in field("Depends")

    # On PATH, the venv's console script.
    assert COMMAND.is_symlink()
    assert COMMAND.resolve() == VENV / "bin" / "agentx-lb"
    assert run(COMMAND, "--version").stdout.strip() == f"agentx-lb {__version__}"
    assert run(COMMAND, "--check-config").stdout.strip() == f"agentx-lb: config ok: {CONFIG}"
    # The venv is Debian's python3; its byte code was compiled by postinst, not shipped.
    assert (VENV / "bin" / "python3").resolve().parent == Path("/usr/bin")
    assert not any(line.endswith(".pyc") for line in run("dpkg", "-L", PACKAGE).stdout.split())
    assert list((VENV / "lib").rglob("agentx_lb/__pycache__/cli.*.pyc"))

    # The MIB is what the agent prints, and what the repository ships.
    assert run(COMMAND, "mib").stdout == MIB.read_text()
    assert MIB.read_text() == (REPO / "mibs" / MIB.name).read_text()

    # The commented config, as a conffile.
    assert CONFIG.read_text() == (REPO / "systemd" / "agentx-lb.toml").read_text()
    assert str(CONFIG) in field("Conffiles")

    # The system user, in group vpp, owning the state directory.
    user = pwd.getpwnam(USER)
    assert user.pw_uid < 1000
    assert user.pw_shell == "/usr/sbin/nologin"
    assert user.pw_dir == str(STATE)
    assert USER in grp.getgrnam("vpp").gr_mem
    st = STATE.stat()
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o700

    # The unit: enabled, not started.
    assert UNIT.is_file()
    assert WANTS.is_symlink() and os.readlink(WANTS) == str(UNIT)
    if Path("/run/systemd/system").is_dir():
        assert run("systemctl", "is-enabled", UNIT.name).stdout.strip() == "enabled"
        assert run("systemctl", "is-active", UNIT.name, ok=False).stdout.strip() != "active"


@deb
def test_installed_unit(installed: Path) -> None:
    s = unit_settings(UNIT)
    assert s["ExecStartPre"] == [f"{COMMAND} --config {CONFIG} --check-config"]
    assert s["ExecStart"] == [f"{COMMAND} --config {CONFIG} run"]
    # Otherwise the repository's unit, line for line (debian/rules edits the Exec lines).
    repo = (REPO / "systemd" / UNIT.name).read_text()
    exec_lines = re.compile(r"^(ExecStart(?:Pre)?=)/usr/local/bin/agentx-lb ", re.M)
    assert UNIT.read_text() == exec_lines.sub(rf"\1{COMMAND} ", repo)
    verify = run("systemd-analyze", "verify", UNIT)
    assert UNIT.name not in verify.stdout + verify.stderr
    assert security_exposure(UNIT) <= MAX_EXPOSURE


@deb
def test_installed_agent_serves_as_its_user(installed: Path) -> None:
    """/usr/bin/agentx-lb as user agentx-lb: VPP sockets root:vpp 0770, AgentX root:agentx-lb."""
    vpp_gid = grp.getgrnam("vpp").gr_gid
    workdir = tempfile.mkdtemp(prefix="axlb-deb-", dir="/tmp")
    os.chmod(workdir, 0o755)
    vpp = snmpd = agent = None
    try:
        vpp = EmulatedVpp(os.path.join(workdir, "vpp"))
        vpp.start()
        index = vpp.add_vip("192.0.2.1/32", protocol=6, port=80, encap="gre4")
        vpp.add_backend(index, "10.0.0.2")
        vpp.traffic(index, thread=1, next_packets=1234)
        # As VPP makes them (unix { gid vpp }): only group vpp may connect.
        os.chmod(os.path.dirname(vpp.api_socket), 0o755)
        for sock in (vpp.api_socket, vpp.stats_socket):
            os.chown(sock, 0, vpp_gid)
            os.chmod(sock, 0o770)

        snmpd_dir = os.path.join(workdir, "snmpd")
        os.mkdir(snmpd_dir, 0o755)
        snmpd = PrivateSnmpd(snmpd_dir)
        with open(snmpd.conf, "a", encoding="ascii") as f:
            f.write("agentXPerms 0660 0750 root agentx-lb\n")  # the README's line
        snmpd.start()

        agent = subprocess.Popen(
            [
                "setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
                "--reset-env", "--",
                str(COMMAND), "--config", str(CONFIG), "run",
                "--vpp-api-socket", vpp.api_socket, "--vpp-stats-socket", vpp.stats_socket,
                "--agentx-socket", snmpd.agentx_socket, "--interval", "1",
            ],
            cwd="/", stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def served() -> dict[str, tuple[str, str]] | None:
            base = f"{VIP_ENTRY}.2"
            try:
                walk = parse_walk(snmpd.walk(base))
            except SnmpError:
                return None
            return {oid: v for oid, v in walk.items() if oid.startswith(base + ".")} or None

        try:
            names = wait_until(served, timeout_s=20, step_s=0.25)
        except AssertionError:
            agent.kill()
            pytest.fail(f"nothing served; agent log:\n{agent.communicate(timeout=10)[1][-3000:]}")
        assert names == {f"{VIP_ENTRY}.2.{index}": ("STRING", '"192.0.2.1/32 tcp/80"')}
        scalars = parse_walk(snmpd.walk(SCALARS))
        assert scalars[f"{SCALARS}.1.0"] == ("INTEGER", "1")  # vppLbAgentVppConnected true

        agent.send_signal(signal.SIGTERM)
        _, log = agent.communicate(timeout=15)
        assert agent.returncode == 0, log
        assert "agentx connected" in log
        # The counter state went where the package put the state directory.
        state = STATE / "counters.json"
        assert state.is_file(), log
        assert state.stat().st_uid == pwd.getpwnam(USER).pw_uid
    finally:
        if agent is not None and agent.returncode is None:
            agent.kill()
            agent.communicate(timeout=10)
        if snmpd is not None:
            snmpd.stop()
        if vpp is not None:
            vpp.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def previous_version(package: Path, workdir: Path) -> tuple[Path, str]:
    """The same package under a lower version: what an upgrade starts from."""
    version = f"{__version__}~prev1"
    tree = workdir / "tree"
    run("dpkg-deb", "-R", package, tree)
    control = tree / "DEBIAN" / "control"
    text = control.read_text()
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", text))
    old = workdir / f"agentx-lb_{version}_all.deb"
    run("dpkg-deb", "-b", tree, old)
    return old, version


@deb
def test_reinstall_and_upgrade_keep_config_state_and_user(installed: Path, tmp_path: Path) -> None:
    CONFIG.write_text(CONFIG.read_text().replace(DEFAULT_LINE, EDITED_LINE))
    (STATE / "operator-marker").write_text("kept\n")
    uid = pwd.getpwnam(USER).pw_uid

    def kept() -> None:
        assert EDITED_LINE in CONFIG.read_text()
        assert (STATE / "operator-marker").read_text() == "kept\n"
        assert pwd.getpwnam(USER).pw_uid == uid
        assert USER in grp.getgrnam("vpp").gr_mem
        assert WANTS.is_symlink()
        assert run(COMMAND, "--check-config").returncode == 0

    apt_get("install", "--reinstall", installed)
    assert dpkg_status() == ("install ok installed", __version__)
    kept()

    old, old_version = previous_version(installed, tmp_path)
    apt_get("install", "--allow-downgrades", old)
    assert dpkg_status() == ("install ok installed", old_version)
    kept()
    apt_get("install", installed)
    assert dpkg_status() == ("install ok installed", __version__)
    kept()


@deb
def test_remove_keeps_config_and_state_purge_removes_everything(installed: Path) -> None:
    apt_get("remove", PACKAGE)
    assert dpkg_status()[0] == "deinstall ok config-files"
    assert not COMMAND.exists() and not VENV.exists() and not UNIT.exists()
    assert CONFIG.is_file() and STATE.is_dir() and has_user(USER)

    apt_get("purge", PACKAGE)
    assert dpkg_status() == ("", "")
    left = [str(p) for p in LEFTOVERS if p.exists() or p.is_symlink()]
    assert left == []
    assert not has_user(USER)
    assert not has_group(USER)
    # Group vpp stays (VPP's sockets use it), without the agent's user in it.
    if has_group("vpp"):
        assert USER not in grp.getgrnam("vpp").gr_mem
