"""A moto server with the strict layer on (tests/strict_aws.py) over awsprac's faithful_moto() (moto's
gaps filled, one request at a time): what every end-to-end test runs against.

Same arguments as `python -m moto.server`; STRICT_AWS_RECORD names the file the layer records to.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import strict_aws  # noqa: E402
from awsprac.engine.sandbox import faithful_moto  # noqa: E402

faithful_moto()  # BaseResponse._dispatch: one request at a time; the strict layer wraps call_action, inside it
strict_aws.install()
strict_aws.STRICT.enabled = True

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
