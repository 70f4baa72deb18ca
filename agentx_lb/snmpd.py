"""A private net-snmp snmpd (AgentX master on loopback), the client tools, and a
private snmptrapd to receive what snmpd forwards.

Used by the integration tests, the benchmarks and the no-VPP demo. It never
touches a system snmpd or snmptrapd: the config, AgentX socket, logs and pids
live in `workdir`, and both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

SNMPD = "/usr/sbin/snmpd"
SNMPTRAPD = "/usr/sbin/snmptrapd"
COMMON = ("-v2c", "-c", "public", "-t", "2", "-r", "1")


class SnmpError(RuntimeError):
    """An snmpd or net-snmp client tool failed; the message carries its stderr."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateSnmpd:
    """`snmpd -f` with a generated config in `workdir`; start/stop/restart/kill."""

    def __init__(
        self, workdir: str, *, port: int | None = None, trap2sink: str | None = None
    ) -> None:
        """`trap2sink`: "127.0.0.1:PORT" to forward every notification to as an
        SNMPv2c trap (community public), e.g. a `PrivateSnmptrapd`."""
        if not os.path.exists(SNMPD):
            raise SnmpError(
                f"{SNMPD} not found: install Debian's snmpd package (apt-get install snmpd)"
            )
        self.workdir = workdir
        self._port = port or free_udp_port()
        self.conf = os.path.join(workdir, "snmpd.conf")
        self.logfile = os.path.join(workdir, "snmpd.log")
        self._proc: subprocess.Popen[bytes] | None = None
        with open(self.conf, "w", encoding="ascii") as f:
            f.write(
                "master agentx\n"
                f"agentXSocket {self.agentx_socket}\n"
                "agentXPerms 0660 0770\n"
                "agentXTimeout 1\n"
                "agentXRetries 5\n"
                "rocommunity public 127.0.0.1\n"
                f"agentaddress udp:127.0.0.1:{self._port}\n"
            )
            if trap2sink:
                f.write(f"trap2sink {trap2sink} public\n")

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def agentx_socket(self) -> str:
        return os.path.join(self.workdir, "agentx.sock")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start snmpd and wait until it answers on UDP and its AgentX socket exists."""
        if self.running:
            return
        # -C: ignore system config files; -Lo/-Lf: log to stdout and a file.
        cmd = [
            SNMPD,
            "-f",
            "-Lo",
            "-Lf",
            self.logfile,
            "-C",
            "-c",
            self.conf,
            "-p",
            os.path.join(self.workdir, "snmpd.pid"),
            "-M",
            "/dev/null",
        ]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SnmpError(f"snmpd exited rc={self._proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.agentx_socket) and self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise SnmpError(f"snmpd did not come up within {timeout_s}s: {self.log_tail()}")

    def _answers(self) -> bool:
        try:
            self.get("1.3.6.1.2.1.1.3.0", timeout="1", retries="0")
        except SnmpError:
            return False
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`."""
        _terminate(self._proc, timeout_s)
        self._proc = None

    def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # ---- client tools (stdout returned; SnmpError with stderr on failure)

    def _run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        timeout: str = "2",
        retries: str = "1",
        mibdirs: str | None = None,
    ) -> str:
        exe = shutil.which(tool)
        if exe is None:
            raise SnmpError(f"{tool} not found: install Debian's snmp package")
        env = dict(os.environ)
        if mibdirs is None:
            # Numeric output only; no MIB loading noise.
            env["MIBS"] = ""
            env["MIBDIRS"] = "/dev/null"
        else:
            env["MIBDIRS"] = mibdirs
            env["MIBS"] = "ALL"
        cmd = [exe, "-v2c", "-c", "public", "-t", timeout, "-r", retries, *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if proc.returncode != 0 or "Timeout" in proc.stderr:
            raise SnmpError(f"{' '.join(cmd)} failed rc={proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    # `options`: extra output flags, e.g. ("-Ox", "-Ot") for hex strings and raw ticks.

    def get(
        self, *oids: str, timeout: str = "2", retries: str = "1", options: Sequence[str] = ()
    ) -> str:
        """`snmpget -On`: lines `.OID = TYPE: value`."""
        return self._run(
            "snmpget", ["-On", *options, self.address, *oids], timeout=timeout, retries=retries
        )

    def getnext(self, oid: str, options: Sequence[str] = ()) -> str:
        return self._run("snmpgetnext", ["-On", *options, self.address, oid])

    def walk(self, oid: str, options: Sequence[str] = ()) -> str:
        return self._run("snmpwalk", ["-On", *options, self.address, oid])

    def bulkwalk(self, oid: str, reps: int = 25, options: Sequence[str] = ()) -> str:
        return self._run("snmpbulkwalk", ["-On", f"-Cr{reps}", *options, self.address, oid])

    def table(self, name_or_oid: str, mibdirs: str | None = None) -> str:
        """`snmptable -Cf ,` (comma separated) with the given MIB directories."""
        return self._run(
            "snmptable", ["-Cf", ",", "-Cb", self.address, name_or_oid], mibdirs=mibdirs
        )


class PrivateSnmptrapd:
    """`snmptrapd -f` on 127.0.0.1:<port>: every notification it receives is one
    line of its log (`lines()`), in `fmt` (snmptrapd's -F; default: the
    varbinds, tab separated, numeric OIDs unless `mibdirs`/`mibs` are given).
    """

    FORMAT = "NOTIFICATION %v\n"

    def __init__(
        self,
        workdir: str,
        *,
        port: int | None = None,
        mibdirs: str | None = None,
        mibs: str | None = None,
        fmt: str | None = FORMAT,
    ) -> None:
        if not os.path.exists(SNMPTRAPD):
            raise SnmpError(
                f"{SNMPTRAPD} not found: install Debian's snmptrapd package "
                "(apt-get install snmptrapd)"
            )
        self.workdir = workdir
        self.port = port or free_udp_port()
        self.conf = os.path.join(workdir, "snmptrapd.conf")
        self.logfile = os.path.join(workdir, "snmptrapd.log")
        self.mibdirs = mibdirs
        self.mibs = mibs
        self.fmt = fmt
        self._proc: subprocess.Popen[bytes] | None = None
        with open(self.conf, "w", encoding="ascii") as f:
            # Log every notification, whatever its community (loopback only).
            f.write("disableAuthorization yes\ndoNotRetainNotificationLogs yes\n")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start it and wait until its log says it listens."""
        if self.running:
            return
        cmd = [SNMPTRAPD, "-f", "-Lf", self.logfile, "-C", "-c", self.conf,
               "-p", os.path.join(self.workdir, "snmptrapd.pid")]  # fmt: skip
        if self.mibdirs is None:
            cmd += ["-M", "/dev/null", "-On"]
        else:
            cmd += ["-M", self.mibdirs, "-m", self.mibs or "ALL"]
        if self.fmt is not None:
            cmd += ["-F", self.fmt]
        cmd.append(f"udp:{self.address}")
        env = dict(os.environ)
        env["SNMP_PERSISTENT_DIR"] = self.workdir  # not /var/lib/snmp
        env["SNMPCONFPATH"] = self.workdir
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SnmpError(f"snmptrapd exited rc={self._proc.returncode}: {self.text()}")
            if "NET-SNMP version" in self.text():  # "started" line: bound and listening
                return
            time.sleep(0.05)
        self.stop()
        raise SnmpError(f"snmptrapd did not come up within {timeout_s}s: {self.text()}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`."""
        _terminate(self._proc, timeout_s)
        self._proc = None

    def text(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def lines(self, prefix: str = "NOTIFICATION ") -> list[str]:
        """The log lines of received notifications (with the default format)."""
        return [line for line in self.text().splitlines() if line.startswith(prefix)]


def _terminate(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM `proc` if it runs, then SIGKILL after `timeout_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
