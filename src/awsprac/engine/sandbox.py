"""`--sandbox` and `awsprac sandbox`: a local AWS emulation (moto's server) on 127.0.0.1, no account needed."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from awsprac.engine.errors import UsageError

SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    # The AWS managed policies (AmazonSSMManagedInstanceCore, ...) exist on real AWS: load them.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}


@dataclass
class Sandbox:
    server: object
    endpoint: str

    @classmethod
    def start(cls, port: int = 0, account_id: str | None = None, set_env: bool = True) -> "Sandbox":
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise UsageError("the sandbox needs moto: pip install 'awsprac[sandbox]'") from None
        # moto answers an API it lacks (DescribeDBEngineVersions) with a 500 and logs a traceback at ERROR;
        # awsprac handles that answer, so the traceback would only alarm the user.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        faithful_moto()
        record_outside_the_working_tree()
        if account_id:
            # Keep a pinned env file valid in the sandbox: emulate that account.
            os.environ["MOTO_ACCOUNT_ID"] = account_id
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        host, bound = server.get_host_and_port()
        endpoint = f"http://{host}:{bound}"
        if set_env:
            os.environ.update(SANDBOX_ENV)
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
                os.environ.pop(key, None)
        return cls(server, endpoint)

    def stop(self) -> None:
        self.server.stop()


def record_outside_the_working_tree() -> None:
    """moto's request recorder (turned on through /moto-api/recorder/) appends to `moto_recording` in the
    current folder unless MOTO_RECORDER_FILEPATH was set before moto was imported: a request dump in the
    user's project. Point it at the temp folder instead (a path the user set is kept)."""
    if os.environ.get("MOTO_RECORDER_FILEPATH"):
        return
    import tempfile

    from moto.moto_api import recorder

    recorder._location = os.path.join(tempfile.gettempdir(), f"awsprac-sandbox-{os.getpid()}.recording")


def faithful_moto() -> None:
    """Where moto falls short of AWS on a call awsprac makes, make it do what AWS does (idempotent).

    - CreateImage with TagSpecifications for the snapshot: AWS tags the AMI's snapshots; moto raises
      NotImplementedError (a 500). Here the image is made with its own tags and the snapshot tagged after.
    - A NAT gateway's network interface: AWS makes it requester-managed, of type `nat_gateway`, and
      removes it with the gateway; moto makes a plain interface and keeps it forever.
    """
    from moto.ec2.models.amis import AmiBackend

    if getattr(AmiBackend.create_image, "_awsprac", False):
        return
    _nat_gateway_interfaces_as_on_aws()
    original = AmiBackend.create_image

    def create_image(self, instance_id, name, description, tag_specifications):
        image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = [t for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])]
        ami = original(self, instance_id, name, description, tag_specifications=image_specs)
        for tag in snapshot_tags:
            ami.ebs_snapshot.add_tag(tag["Key"], tag["Value"])
        return ami

    create_image._awsprac = True  # type: ignore[attr-defined]
    AmiBackend.create_image = create_image


def _nat_gateway_interfaces_as_on_aws() -> None:
    from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend

    made, deleted = NatGateway.__init__, NatGatewayBackend.delete_nat_gateway

    def __init__(self, *args, **kwargs):
        made(self, *args, **kwargs)
        self._eni.interface_type = "nat_gateway"
        self._eni.requester_managed = True
        self._eni.description = f"Interface for NAT Gateway {self.id}"

    def delete_nat_gateway(self, nat_gateway_id):
        gateway = deleted(self, nat_gateway_id)
        eni = getattr(gateway, "_eni", None)
        if eni is not None and eni.id in self.enis:
            for address in self.addresses:
                if address.eni is eni:
                    address.eni, address.association_id = None, None
            self.enis.pop(eni.id)
        return gateway

    NatGateway.__init__ = __init__
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway
