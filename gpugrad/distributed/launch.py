"""Starting a job on this machine: the ``mpiexec`` command line for N copies of a program.

``mpiexec_command(n, [sys.executable, "train.py"])`` finds the ``mpiexec`` of the MPI that
mpi4py uses (the one installed next to this Python first, then ``PATH``) and adds what a single
machine needs: Open MPI is allowed to run as root and to start more processes than cores, and
both MPICH and Open MPI are kept on shared memory and the loopback interface.

``python -m gpugrad.distributed -n 2 train.py`` runs a script that way.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path


def find_mpiexec() -> str | None:
    """The ``mpiexec`` beside this interpreter (a virtual environment's MPI wheel), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("mpiexec") or shutil.which("mpirun")


@functools.lru_cache(maxsize=8)
def implementation(mpiexec: str) -> str:
    """``'openmpi'``, ``'mpich'`` (Hydra, also Intel MPI) or ``'unknown'``."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).lower()
    if "open mpi" in text or "open-mpi" in text or "prrte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text or "intel" in text:
        return "mpich"
    return "unknown"


def mpiexec_command(n: int, argv: list[str], mpiexec: str | None = None) -> list[str]:
    """The command that starts ``n`` processes of ``argv`` on this machine."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"mpiexec_command: n must be a positive integer, got {n!r}")
    exe = mpiexec or find_mpiexec()
    if exe is None:
        raise FileNotFoundError(
            "no mpiexec found beside this Python or on PATH; install an MPI, e.g. pip install mpi4py mpich"
        )
    cmd = [exe, "-n", str(n)]
    if implementation(exe) == "openmpi":
        cmd += ["--oversubscribe", "--mca", "btl", "self,sm,tcp", "--mca", "btl_tcp_if_include", "lo"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
    return cmd + list(argv)


def environment(base: dict | None = None) -> dict:
    """An environment for a single-machine job: Open MPI and MPICH's launchers stay on loopback."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMPI_MCA_oob_tcp_if_include", "lo")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("HYDRA_LAUNCHER", "fork")  # MPICH: start local processes directly, no ssh
    return env


def main(argv=None) -> int:
    """``python -m gpugrad.distributed -n N script.py [args...]``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m gpugrad.distributed",
                                description="Run a Python script as an N-process job on this machine.")
    p.add_argument("-n", "--np", dest="n", type=int, default=2, help="number of processes (default 2)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = mpiexec_command(a.n, [sys.executable, a.script, *a.args])
    return subprocess.call(cmd, env=environment())
