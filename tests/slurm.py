"""A real single-node SLURM cluster for the tests, from Debian's slurm-wlm and munge (the Makefile's
test prerequisites install them, as they install Chromium): munged, slurmctld and slurmd run as
root with their own key, sockets, ports, config and state under a temp folder, and are stopped by
pid. Nothing is installed here and nothing outside the folder is touched."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def unavailable() -> str | None:
    """Why no cluster can start here (None: it can)."""
    if os.geteuid() != 0:
        return "the SLURM tests start munged, slurmctld and slurmd as root: not root here"
    missing = [tool for tool in (*DAEMONS, "sbatch", "squeue", "scancel") if shutil.which(tool) is None
               and not Path("/usr/sbin", tool).exists()]
    if missing:
        return f"no {', '.join(missing)} here: `make test` installs Debian's slurm-wlm and munge where apt can"
    return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    """`start()` returns the environment a client needs (SLURM_CONF); `stop()` ends every job and daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.pids = {name: root / f"{name}.pid" for name in DAEMONS}

    def start(self, timeout_s: float = 60.0) -> dict[str, str]:
        munge = self.root / "munge"
        for folder in (munge, self.root / "state", self.root / "spool"):
            folder.mkdir(parents=True)
        munge.chmod(0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = munge / "socket"
        subprocess.run([_binary("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={self.pids['munged']}", f"--log-file={munge / 'munged.log'}",
                        f"--seed-file={munge / 'seed'}"], check=True, capture_output=True, timeout=30)
        ctld_port, node_port = _free_ports(2)
        cpus = os.cpu_count() or 1
        r = self.root
        self.conf.write_text(f"""ClusterName=benchtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
SlurmctldPort={ctld_port}
SlurmdPort={node_port}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={self.pids['slurmctld']}
SlurmdPidFile={self.pids['slurmd']}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=localhost CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        subprocess.run([_binary("slurmctld"), "-f", str(self.conf)], check=True, env=env, timeout=30)
        subprocess.run([_binary("slurmd"), "-f", str(self.conf), "-N", "localhost"], check=True, env=env, timeout=30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() == "idle":
                return {"SLURM_CONF": str(self.conf)}
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the test cluster did not come up in {timeout_s:.0f} s: see {self.root}/*.log")

    def stop(self) -> None:
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        if self.pids["slurmctld"].exists():
            subprocess.run(["scancel", "--full", "--user=root"], env=env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and subprocess.run(
                    ["squeue", "--noheader"], env=env, capture_output=True, text=True).stdout.strip():
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            self._kill(self.pids[name])

    @staticmethod
    def _kill(pid_file: Path) -> None:
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
