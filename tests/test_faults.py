"""Real AWS faults moto does not produce, injected with botocore hooks; each retried only where AWS documents it as transient."""

import boto3
import botocore.awsrequest

from awsprac.engine import runner
from awsprac.engine.errors import AwsError
from awsprac.engine.reconcile import DEPENDENCY_BUDGET, EVENTUAL_CONSISTENCY_BUDGET, StillInUse

from conftest import FailFirst, aws_error


def up(ctx, names=None):
    steps = runner.resolve(names)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    return outcome


def test_a_new_vpc_not_yet_visible_to_create_subnet_is_retried(make_ctx, clock):
    fault = FailFirst("CreateSubnet", "InvalidVpcID.NotFound", times=2, message="The vpc ID 'vpc-1' does not exist")
    outcome = up(make_ctx(hooks=[fault.hook]))
    assert outcome.ok, outcome.failed
    assert fault.failed == 2 and fault.passed == 4
    assert clock.pauses and sum(clock.pauses) <= EVENTUAL_CONSISTENCY_BUDGET


def test_a_new_vpc_not_yet_visible_to_modify_vpc_attribute_is_retried(make_ctx, clock):
    fault = FailFirst("ModifyVpcAttribute", "InvalidVpcID.NotFound")
    assert up(make_ctx(hooks=[fault.hook]), ["vpc"]).ok
    assert fault.failed == 1 and fault.passed == 1


def test_not_found_past_the_budget_fails_with_the_cause(make_ctx, clock):
    fault = FailFirst("AttachInternetGateway", "InvalidInternetGatewayID.NotFound", times=1000)
    outcome = up(make_ctx(hooks=[fault.hook]))
    error = outcome.failed["igw"]
    assert isinstance(error, AwsError)
    assert str(error).startswith("creating internet gateway aws-practice-igw-stg failed: InvalidInternetGatewayID.NotFound")
    # Retried until the budget ran out, not given up at once (which would also stay within the budget).
    assert fault.failed == len(clock.pauses) + 1 >= 3, (fault.failed, clock.pauses)
    assert EVENTUAL_CONSISTENCY_BUDGET / 2 <= sum(clock.pauses) <= EVENTUAL_CONSISTENCY_BUDGET


def test_other_errors_are_not_retried(make_ctx, clock):
    fault = FailFirst("CreateSubnet", "InvalidSubnet.Conflict", times=1000, message="The CIDR '10.0.0.0/18' conflicts with another subnet")
    outcome = up(make_ctx(hooks=[fault.hook]))
    assert "InvalidSubnet.Conflict" in str(outcome.failed["subnets"])
    assert fault.failed == 4 and clock.pauses == [], "each of the four subnets tried once, none retried"


def test_dependency_violation_on_delete_is_waited_out(make_ctx, clock):
    assert up(make_ctx()).ok
    fault = FailFirst("DeleteVpc", "DependencyViolation", times=3, message="The vpc 'vpc-1' has dependencies and cannot be deleted.")
    ctx = make_ctx(hooks=[fault.hook])
    steps = runner.resolve(None)
    outcome = runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps))
    assert outcome.ok, outcome.failed
    assert fault.failed == 3 and fault.passed == 1
    assert runner.teardown_plan(make_ctx(), steps).changes == []


def test_dependency_violation_past_the_budget_names_what_is_in_the_way(make_ctx, clock):
    assert up(make_ctx()).ok
    ec2 = boto3.client("ec2", region_name="ap-northeast-1")
    subnet = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["private-subnet-1a-stg"]}])["Subnets"][0]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet, Description="RDSNetworkInterface")["NetworkInterface"]["NetworkInterfaceId"]
    refused = []

    def in_use(model, params, **kwargs):
        if params["body"].get("SubnetId") == subnet:  # the serialized query request
            refused.append(subnet)
            return aws_error("DependencyViolation", "The subnet has dependencies and cannot be deleted.")

    ctx = make_ctx(hooks=[("before-call.ec2.DeleteSubnet", in_use)])
    steps = runner.resolve(None)
    outcome = runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps))
    error = outcome.failed["subnets"]
    assert isinstance(error, StillInUse)
    assert f"still used by {eni} (RDSNetworkInterface, " in str(error)
    assert "then run the same command again" in str(error)
    assert outcome.skipped == {"vpc": "subnets"}, "the VPC is not attempted while its subnets remain"
    assert len(refused) >= 3, "waited out with retries before giving up"
    assert DEPENDENCY_BUDGET / 2 <= sum(clock.pauses) <= DEPENDENCY_BUDGET


def test_throttling_is_retried_by_botocore_standard_mode(make_ctx):
    """Injected below botocore's retry handler, as a real HTTP answer: the SDK's own retries must absorb it."""
    sent = {"n": 0}

    def throttle(request, **kwargs):  # registered for DescribeVpcs only
        sent["n"] += 1
        if sent["n"] <= 2:
            body = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>"
            return botocore.awsrequest.AWSResponse(request.url, 503, {}, _Raw(body))
        return None

    ctx = make_ctx(hooks=[("before-send.ec2.DescribeVpcs", throttle)])
    planned = runner.plan(ctx, runner.resolve(["vpc"]))
    assert [c.name for c in planned.changes] == ["aws-practice-stg"]
    assert sent["n"] == 3


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body

    def read(self, *args):
        body, self.body = self.body, b""
        return body
