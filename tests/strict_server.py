"""The end-to-end tests' moto server, in its own process: awsprac's faithful_moto() (moto's gaps filled,
one request at a time) with the strict layer (tests/strict_aws.py) on top. Every end-to-end test runs
against it.

Binds port 0 on 127.0.0.1 and prints the port on one line; serves until its stdin closes (the test
session's end). STRICT_AWS_RECORD names the file the layer records to, STRICT_AWS_CONTROL the file the
tests write the env's NAT mode to.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import strict_aws  # noqa: E402
from moto_policies import load_only_the_managed_policies_awsprac_uses  # noqa: E402
from awsprac.engine.sandbox import faithful_moto  # noqa: E402

# Both patches stay on: faithful_moto() wraps BaseResponse._dispatch (one request at a time), the
# strict layer wraps call_action, which _dispatch calls, so its rules run inside that lock.
load_only_the_managed_policies_awsprac_uses()
faithful_moto()
strict_aws.install()
strict_aws.STRICT.enabled = True

from moto.server import ThreadedMotoServer  # noqa: E402

if __name__ == "__main__":
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test session closes our stdin
    server.stop()
