"""awsprac benchmark: calls, wall time and concurrency of `up`, and start-up time of `--help`.

    .venv/bin/python benches/bench.py [--delay 0.05] [--env stg] [--app] [--timeline]

Starts a moto server on 127.0.0.1 behind a proxy that adds `--delay` seconds to every request
(a real region's round trip), then measures:

  cold up       every call awsprac makes to build the env from nothing, and the wall time
  ratio         wall time of the AWS phase (first request to last answer) over the serial sum
                of all calls' durations: how much runs in parallel (lower is better; target <= 0.35)
  converged up  calls and writes of a second `up` that has nothing to do (target: <= 20 calls, 0 writes;
                <= 28 with --app)
  --help        start-up of `awsprac --help` against `python -c "import boto3"` (target: under half)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from proxy import Proxy, is_write  # noqa: E402


def start_moto(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_EC2_LOAD_DEFAULT_AMIS": "false", "MOTO_ECS_SERVICE_RUNNING": "1"}
    log = open(folder / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def warm_up(endpoint: str) -> None:
    """moto builds each service's backend on first use (EC2's takes over a second): not awsprac's time."""
    import boto3

    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="ap-northeast-1")
    for service, call in (("ec2", "describe_vpcs"), ("ssm", "describe_parameters"), ("sts", "get_caller_identity"),
                          ("iam", "list_roles"), ("rds", "describe_db_instances"), ("secretsmanager", "list_secrets"),
                          ("ecr", "describe_repositories"), ("scheduler", "list_schedule_groups"), ("ecs", "list_clusters"),
                          ("elbv2", "describe_load_balancers"), ("logs", "describe_log_groups")):
        getattr(session.client(service, endpoint_url=endpoint), call)()


def with_the_app(env_file: Path, endpoint: str, env: str) -> None:
    """[app] enabled, and what `awsprac image release --record-tag` leaves: the repository (as awsprac
    makes it), an image, its tag in SSM."""
    import json

    import boto3

    head, app = env_file.read_text().split("[app]\n", 1)
    env_file.write_text(head + "[app]\n" + app.replace("enabled = false", "enabled = true", 1))
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="ap-northeast-1")
    repo = f"aws-practice-{env}"
    session.client("ecr", endpoint_url=endpoint).create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE", tags=[
        {"Key": "Name", "Value": repo}, {"Key": "awsprac:project", "Value": "aws-practice"}, {"Key": "awsprac:env", "Value": env}])
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": "sha256:" + "b" * 64, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}
    session.client("ecr", endpoint_url=endpoint).put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag="bench01")
    session.client("ssm", endpoint_url=endpoint).put_parameter(Name=f"image-tag-aws-practice-{env}", Value="bench01", Type="String")


def awsprac(args: list[str], endpoint: str, cwd: Path) -> float:
    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or "awsprac"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        env.pop(key, None)
    start = time.monotonic()
    result = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"awsprac {' '.join(args)} failed:\n{result.stderr}")
    return elapsed


def startup(command: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added to every AWS request (default 0.05)")
    parser.add_argument("--env", default="stg")
    parser.add_argument("--app", action="store_true", help="with the app tier on (and an image released before the cold up)")
    parser.add_argument("--timeline", action="store_true", help="also print every call of the cold up with its start and end (ms)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="awsprac-bench-"))
    shutil.copytree(REPO / "envs", folder / "envs")
    moto, endpoint = start_moto(folder)
    warm_up(endpoint)
    if args.app:
        with_the_app(folder / "envs" / f"{args.env}.toml", endpoint, args.env)
    proxy = Proxy(endpoint, delay=args.delay).start()
    rows = []
    try:
        up = ["up", "--env", args.env, "--yes"]
        cold_wall = awsprac(up, proxy.endpoint, folder)
        cold = proxy.timings()
        proxy.reset_counts()
        warm_wall = awsprac(up, proxy.endpoint, folder)
        warm = proxy.timings()
    finally:
        proxy.stop()
        moto.terminate()
        moto.wait()

    serial = sum(t.duration for t in cold)
    phase = max(t.end for t in cold) - min(t.start for t in cold)
    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or "awsprac"
    help_time = startup([exe, "--help"])
    boto_time = startup([sys.executable, "-c", "import boto3"])

    rows = [
        ("cold up: calls", f"{len(cold)} ({sum(is_write(t.action) for t in cold)} writes)", ""),
        ("cold up: wall time", f"{cold_wall:.2f} s", f"AWS phase {phase:.2f} s"),
        ("cold up: serial sum of calls", f"{serial:.2f} s", ""),
        ("cold up: AWS phase / serial sum", f"{phase / serial:.2f}", "target <= 0.35"),
        ("converged up: calls", f"{len(warm)} ({sum(is_write(t.action) for t in warm)} writes)", f"target <= {28 if args.app else 20} calls, 0 writes"),
        ("converged up: wall time", f"{warm_wall:.2f} s", ""),
        ("awsprac --help", f"{help_time * 1000:.0f} ms", f"{help_time / boto_time:.2f} x import boto3 (target < 0.5)"),
        ("python -c 'import boto3'", f"{boto_time * 1000:.0f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"awsprac benchmark: env {args.env}, {args.delay * 1000:.0f} ms per request, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")
    print("\n  converged up calls: " + ", ".join(t.action for t in warm))
    if args.timeline:
        origin = min(t.start for t in cold)
        print("\n  cold up timeline (ms from the first request):")
        for t in sorted(cold, key=lambda t: t.start):
            print(f"  {(t.start - origin) * 1000:7.0f} {(t.end - origin) * 1000:7.0f}  {t.action}")


if __name__ == "__main__":
    main()
