"""Stand-ins for the tests, installed on PATH as executables (their file name picks the part):

- `session-manager-plugin`: records its arguments and AWS_SSM_START_SESSION_RESPONSE as a JSON line, says
  what the real plugin says once the local port is open ("Waiting for connections..."), then runs until
  it is stopped (recorded). STAND_IN_SSM_CTRL_C=1: once ready it sends SIGINT to its parent, as a
  person's Ctrl-C would reach awsprac; STAND_IN_SSM_END=1: it ends once ready. STAND_IN_SSM_FAIL=1: it ends before the port opens, as on a
  session the instance's agent refused. `--version` prints STAND_IN_SSM_VERSION (default 1.2.707.0).
  STAND_IN_SSM_FORWARD=HOST:PORT: it really forwards the local port there (a test's PostgreSQL), as the
  session would forward it to the DB endpoint.
- `psql`: records its arguments and PGPASSWORD, exits with STAND_IN_PSQL_EXIT (default 0).
"""

import json
import os
import signal
import sys
import threading
from pathlib import Path


def record(entry: dict) -> None:
    with Path(os.environ["STAND_IN_SSM_LOG"]).open("a") as f:
        f.write(json.dumps(entry) + "\n")


def plugin(args: list[str]) -> int:
    if args == ["--version"]:
        print(os.environ.get("STAND_IN_SSM_VERSION", "1.2.707.0"))
        return 0
    record({"program": "session-manager-plugin", "argv": args, "response_env": os.environ.get("AWS_SSM_START_SESSION_RESPONSE")})
    if os.environ.get("STAND_IN_SSM_FAIL"):
        print("----------ERROR-------\nEncountered error while initiating handshake. SessionType failed on client with status 2 error", flush=True)
        return 1
    session = json.loads(os.environ.get("AWS_SSM_START_SESSION_RESPONSE") or args[0])
    local_port = json.loads(args[4])["Parameters"]["localPortNumber"][0]
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    if os.environ.get("STAND_IN_SSM_FORWARD"):
        forward(int(local_port), os.environ["STAND_IN_SSM_FORWARD"])
    print(f"\nStarting session with SessionId: {session['SessionId']}")
    print(f"Port {local_port} opened for sessionId {session['SessionId']}.")
    print("Waiting for connections...\n", flush=True)
    if os.environ.get("STAND_IN_SSM_CTRL_C"):
        os.kill(os.getppid(), signal.SIGINT)
    if os.environ.get("STAND_IN_SSM_END"):  # the session ends on AWS's side (idle timeout)
        return 0
    stopped.wait(120)
    record({"program": "session-manager-plugin", "stopped": stopped.is_set()})
    return 0


def forward(local_port: int, target: str) -> None:
    import socket

    host, _, port = target.rpartition(":")
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", local_port))
    server.listen()

    def pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def psql(args: list[str]) -> int:
    record({"program": "psql", "argv": args, "PGPASSWORD": os.environ.get("PGPASSWORD")})
    return int(os.environ.get("STAND_IN_PSQL_EXIT", "0"))


if __name__ == "__main__":
    name = Path(sys.argv[0]).name
    sys.exit(plugin(sys.argv[1:]) if name == "session-manager-plugin" else psql(sys.argv[1:]))
