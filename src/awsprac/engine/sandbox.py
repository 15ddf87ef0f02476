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
        # The emulation runs no containers: the API's service reports its one task running, rollout COMPLETED.
        os.environ.setdefault("MOTO_ECS_SERVICE_RUNNING", "1")
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
    - UpdateService with another task definition: AWS starts a new PRIMARY deployment and, when the tasks
      come up healthy, completes it and drops the old one; moto only swaps the task definition, so a
      rollout watch (`app deploy`) would wait forever. Here the rollout succeeds at once (see _rolled_out).
    - Concurrent requests: AWS answers each consistently; moto's backends are plain dicts that a read
      iterates while another thread's create adds to them ("dictionary changed size during iteration"
      in GetAccountAuthorizationDetails while awsprac applies steps at the same time). Here moto handles
      one request at a time (see _one_request_at_a_time); awsprac still sends them concurrently.
    - A NAT gateway's network interface: AWS makes it requester-managed, of type `nat_gateway`, and
      removes it with the gateway; moto makes a plain interface and keeps it forever.
    """
    _tag_ami_snapshots()
    _rolled_out()
    _nat_gateway_interfaces_as_on_aws()
    _one_request_at_a_time()


def _one_request_at_a_time() -> None:
    import threading

    from moto.core.responses import BaseResponse

    if getattr(BaseResponse._dispatch, "_awsprac", False):
        return
    original = BaseResponse._dispatch
    lock = threading.RLock()

    def _dispatch(self, request, *args, **kwargs):
        # The body is read before the lock: a client gone in the middle of sending one (a killed run)
        # leaves it short, and the read waits for bytes that never come; alone, not holding up everyone.
        getattr(request, "get_data", lambda: None)()
        with lock:
            return original(self, request, *args, **kwargs)

    _dispatch._awsprac = True  # type: ignore[attr-defined]
    BaseResponse._dispatch = _dispatch


def _tag_ami_snapshots() -> None:
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


def _rolled_out() -> None:
    """UpdateService to a new task definition leaves what AWS shows once that rollout succeeded: one
    deployment, PRIMARY, on the new revision, rolloutState COMPLETED, runningCount = desiredCount (the old
    deployment, ACTIVE while it drained, is gone), and the service's events saying so. The same revision
    again, or a service not on the ECS deployment controller, is left to moto."""
    from moto.core.utils import utcnow
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api._internal import mock_random

    if getattr(EC2ContainerServiceBackend.update_service, "_awsprac", False):
        return
    original = EC2ContainerServiceBackend.update_service

    def update_service(self, service_properties):
        wanted = service_properties.get("task_definition")
        service = original(self, service_properties)
        if not wanted or service.deployment_controller.get("type", "ECS") != "ECS":
            return service
        arn = self.describe_task_definition(wanted).arn
        service.task_definition = arn  # AWS answers with the ARN, however the revision was named
        primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), {})
        if primary.get("taskDefinition") == arn:
            return service
        service.running_count, service.pending_count = service.desired_count, 0
        now, deployment = utcnow(), f"ecs-svc/{mock_random.randint(0, 32**12)}"
        service.deployments = [{
            **primary, "id": deployment, "status": "PRIMARY", "taskDefinition": arn, "createdAt": now, "updatedAt": now,
            "desiredCount": service.desired_count, "runningCount": service.desired_count, "pendingCount": 0, "failedTasks": 0,
            "rolloutState": "COMPLETED", "rolloutStateReason": f"ECS deployment {deployment} completed.",
        }]
        for message in (f"(service {service.name}) has started {service.desired_count} tasks: (deployment {deployment}).",
                        f"(service {service.name}) (deployment {deployment}) deployment completed.",
                        f"(service {service.name}) has reached a steady state."):
            service.events.insert(0, {"id": str(mock_random.uuid4()), "createdAt": now, "message": message})
        return service

    update_service._awsprac = True  # type: ignore[attr-defined]
    EC2ContainerServiceBackend.update_service = update_service


def _nat_gateway_interfaces_as_on_aws() -> None:
    from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend

    if getattr(NatGateway.__init__, "_awsprac", False):
        return
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

    __init__._awsprac = True  # type: ignore[attr-defined]
    NatGateway.__init__ = __init__
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway
