"""A stand-in `docker` for the tests: installed on PATH as an executable, it records every call
(arguments and standard input) as a JSON line, and behaves like docker where awsprac depends on it:

- `version --format ...`: the server version, or the real "Cannot connect to the Docker daemon" when
  STAND_IN_DOCKER_DAEMON=down (for every command);
- `login --username U --password-stdin REGISTRY`: refuses a password given any other way;
- `build ... -t REF DIR`: needs DIR/Dockerfile; fails as docker does when STAND_IN_DOCKER_BUILD=fail;
- `push REF`: needs a build of REF and a login to its registry; with AWS_ENDPOINT_URL set (a moto
  server), the image really lands in that ECR repository, so the next release finds the tag.
"""

import json
import os
import sys
from pathlib import Path

DAEMON_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def main() -> int:
    args = sys.argv[1:]
    data = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    log = Path(os.environ["STAND_IN_DOCKER_LOG"])
    with log.open("a") as f:
        f.write(json.dumps({"argv": args, "stdin": data}) + "\n")
    state_file = log.with_suffix(".state.json")
    state = json.loads(state_file.read_text()) if state_file.exists() else {"logins": {}, "built": []}

    if os.environ.get("STAND_IN_DOCKER_DAEMON") == "down":
        if args[:1] == ["version"]:
            print("Client:\n Version:           28.2.2")
        print(DAEMON_DOWN, file=sys.stderr)
        return 1
    command = args[0] if args else ""
    if command == "version":
        print("28.2.2")
        return 0
    if command == "login":
        if "--password-stdin" not in args or not data:
            print("Error: Cannot perform an interactive login from a non TTY device", file=sys.stderr)
            return 1
        registry = args[-1]
        state["logins"][registry] = {"user": args[args.index("--username") + 1], "password": data}
        print("WARNING! Your credentials are stored unencrypted in '/root/.docker/config.json'.")
        print("Login Succeeded")
    elif command == "build":
        ref, folder = args[args.index("-t") + 1], Path(args[-1])
        if not (folder / "Dockerfile").is_file():
            print(f"ERROR: failed to read dockerfile: open {folder}/Dockerfile: no such file or directory", file=sys.stderr)
            return 1
        print("#0 building with \"default\" instance using docker driver")
        print("#1 [internal] load build definition from Dockerfile")
        if os.environ.get("STAND_IN_DOCKER_BUILD") == "fail":
            print("#5 [2/3] RUN ./gradlew bootJar", file=sys.stderr)
            print("ERROR: failed to solve: process \"/bin/sh -c ./gradlew bootJar\" did not complete successfully: exit code: 1", file=sys.stderr)
            return 1
        print(f"#8 naming to {ref} done")
        state["built"].append(ref)
    elif command == "push":
        ref = args[1]
        registry, _, rest = ref.partition("/")
        repository, _, tag = rest.rpartition(":")
        if ref not in state["built"]:
            print(f"An image does not exist locally with the tag: {ref.rpartition(':')[0]}", file=sys.stderr)
            return 1
        if registry not in state["logins"]:
            print("no basic auth credentials", file=sys.stderr)
            return 1
        print(f"The push refers to repository [{registry}/{repository}]")
        print("5f70bf18a086: Pushed")
        if os.environ.get("AWS_ENDPOINT_URL"):
            import boto3

            region = registry.split(".")[3]
            manifest = {
                "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": f"sha256:{tag:0>64}"},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": f"sha256:{tag:f>64}"}],
            }
            boto3.client("ecr", region_name=region).put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        print(f"{tag}: digest: sha256:{tag:0>64} size: 528")
    else:
        print(f"docker: unknown command: docker {command}", file=sys.stderr)
        return 1
    state_file.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
