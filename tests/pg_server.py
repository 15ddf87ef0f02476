"""A real PostgreSQL server for the tests: Debian's `postgresql` package (initdb and postgres from
/usr/lib/postgresql/<major>/bin, installed by .ci/run), on 127.0.0.1 and a free port, with a temporary
data directory. PostgreSQL refuses to run as root: when the tests do, the server runs as `nobody`, owner
of its data directory. fsync off: a test server, started once per test session (about a second).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ADMIN = "admin"  # the bootstrap superuser; RDS's master is NOT a superuser, so tests use another role for it


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    postgres = shutil.which("postgres")
    return Path(postgres).parent if postgres else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    host: str
    port: int
    admin_password: str
    version: str
    process: subprocess.Popen
    data: Path

    def admin(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=ADMIN, password=self.admin_password, dbname=dbname, autocommit=True)

    def stop(self) -> None:
        # SIGINT to the postmaster itself (runuser does not pass it on): PostgreSQL's fast shutdown.
        pid_file = self.data / "cluster" / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def start() -> Server:
    binaries = bin_dir()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL server binaries (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="awsprac-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    password = os.urandom(12).hex()
    pwfile = data / "pw"
    pwfile.write_text(password)
    if as_user:
        os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
    cluster = data / "cluster"
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(cluster), "-U", ADMIN, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    pwfile.unlink()
    port = _free_port()
    process = subprocess.Popen(
        [*as_user, str(binaries / "postgres"), "-D", str(cluster), "-h", "127.0.0.1", "-p", str(port), "-k", str(cluster),
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = Server("127.0.0.1", port, password, binaries.parts[-2], process, data)
    for _ in range(300):  # until it takes connections (a second or two)
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode} at start")
        try:
            server.admin().close()
            return server
        except Exception:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("postgres did not take connections within 15 s")
