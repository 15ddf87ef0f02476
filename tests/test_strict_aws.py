"""The strict layer itself (strict_aws.py): each rule refuses with AWS's code, each recorder records.
In-process moto; the end-to-end server runs the same layer."""

import boto3
import botocore.exceptions
import pytest

import strict_aws as layer

REGION = "ap-northeast-1"


def client(service):
    return boto3.client(service, region_name=REGION)


def code(call, **params) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call(**params)
    return refused.value.response["Error"]["Code"]


@pytest.fixture
def net(strict_aws):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24", AvailabilityZone="ap-northeast-1a")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="ap-northeast-1a")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    return {"ec2": ec2, "vpc": vpc, "public": public, "private": private, "sg": sg}


def launch(net, subnet):
    ec2 = net["ec2"]
    return ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": subnet, "Groups": [net["sg"]], "AssociatePublicIpAddress": True}])["Instances"][0]


def test_deleting_what_a_live_instance_uses_is_a_dependency_violation(net, strict_aws):
    ec2 = net["ec2"]
    instance = launch(net, net["public"])
    assert code(ec2.delete_subnet, SubnetId=net["public"]) == "DependencyViolation"
    assert code(ec2.delete_security_group, GroupId=net["sg"]) == "DependencyViolation"
    assert code(ec2.delete_vpc, VpcId=net["vpc"]) == "DependencyViolation"
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    assert code(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=net["vpc"]) == "DependencyViolation"
    assert code(ec2.delete_internet_gateway, InternetGatewayId=igw) == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    ec2.delete_security_group(GroupId=net["sg"])
    ec2.delete_subnet(SubnetId=net["public"])
    assert [r["code"] for r in strict_aws.refused] == ["DependencyViolation"] * 5


def test_a_live_db_holds_its_subnet_and_group_and_a_protected_one_is_not_deleted(net, strict_aws):
    rds = client("rds")
    rds.create_db_subnet_group(DBSubnetGroupName="g", DBSubnetGroupDescription="g", SubnetIds=[net["private"], net["public"]])
    rds.create_db_instance(DBInstanceIdentifier="db", Engine="postgres", DBInstanceClass="db.t4g.micro", MasterUsername="postgres",
                           MasterUserPassword="x" * 20, AllocatedStorage=20, DBSubnetGroupName="g", VpcSecurityGroupIds=[net["sg"]],
                           AvailabilityZone="ap-northeast-1a", DeletionProtection=True, PreferredBackupWindow="16:00-19:00",
                           PreferredMaintenanceWindow="tue:20:00-tue:20:30")
    assert code(net["ec2"].delete_subnet, SubnetId=net["private"]) == "DependencyViolation"
    assert code(net["ec2"].delete_security_group, GroupId=net["sg"]) == "DependencyViolation"
    assert code(rds.delete_db_instance, DBInstanceIdentifier="db", SkipFinalSnapshot=True) == "InvalidParameterCombination"


def test_a_load_balancer_a_live_service_or_another_groups_rule_holds_a_group(net, strict_aws):
    ec2, elb, ecs = net["ec2"], client("elbv2"), client("ecs")
    other = ec2.create_subnet(VpcId=net["vpc"], CidrBlock="10.9.2.0/24", AvailabilityZone="ap-northeast-1c")["Subnet"]["SubnetId"]
    front = ec2.create_security_group(GroupName="front", Description="f", VpcId=net["vpc"])["GroupId"]
    back = ec2.create_security_group(GroupName="back", Description="b", VpcId=net["vpc"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=back, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": front}]}])
    lb = elb.create_load_balancer(Name="lb", Subnets=[net["public"], other], SecurityGroups=[front])["LoadBalancers"][0]["LoadBalancerArn"]
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="t", containerDefinitions=[{"name": "api", "image": "x", "memory": 512}], networkMode="awsvpc")
    ecs.create_service(cluster="c", serviceName="s", taskDefinition="t", desiredCount=1, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [net["private"]], "securityGroups": [back]}})
    assert code(ec2.delete_security_group, GroupId=back) == "DependencyViolation"  # the service's tasks
    assert code(ec2.delete_security_group, GroupId=front) == "DependencyViolation"  # the load balancer, and back's rule
    elb.delete_load_balancer(LoadBalancerArn=lb)
    assert code(ec2.delete_security_group, GroupId=front) == "DependencyViolation"  # back's rule still names it
    ecs.delete_service(cluster="c", service="s", force=True)
    ec2.delete_security_group(GroupId=back)
    ec2.delete_security_group(GroupId=front)
    assert [r["code"] for r in strict_aws.refused] == ["DependencyViolation"] * 3


def test_overlapping_windows_are_refused_and_a_missing_maintenance_window_is_chosen_by_aws(net, strict_aws):
    rds = client("rds")
    params = dict(Engine="postgres", DBInstanceClass="db.t4g.micro", MasterUsername="postgres", MasterUserPassword="x" * 20, AllocatedStorage=20)
    assert code(rds.create_db_instance, DBInstanceIdentifier="a", PreferredBackupWindow="16:00-19:00",
                PreferredMaintenanceWindow="sun:18:30-sun:19:00", **params) == "InvalidParameterValue"
    rds.create_db_instance(DBInstanceIdentifier="b", PreferredBackupWindow="16:00-19:00", **params)
    chosen = rds.describe_db_instances(DBInstanceIdentifier="b")["DBInstances"][0]["PreferredMaintenanceWindow"]
    assert not layer.overlap("16:00-19:00", chosen)
    assert code(rds.modify_db_instance, DBInstanceIdentifier="b", PreferredBackupWindow="18:00-20:00") == "InvalidParameterValue"
    assert strict_aws.refused[-1]["message"] == "The backup window and maintenance window must not overlap."


@pytest.mark.parametrize("backup, maintenance, overlaps", [
    ("16:00-19:00", "sun:18:30-sun:19:00", True),
    ("16:00-19:00", "tue:20:00-tue:20:30", False),
    ("23:30-00:30", "mon:00:00-mon:00:30", True),
    ("16:00-19:00", "sat:23:45-sun:16:15", True),
    ("16:00-19:00", "wed:19:00-wed:19:30", False),
])
def test_window_overlap(backup, maintenance, overlaps):
    assert layer.overlap(backup, maintenance) is overlaps


def test_a_snapshot_is_in_use_for_a_while_after_its_image_is_deregistered(net, strict_aws):
    ec2 = net["ec2"]
    instance = launch(net, net["public"])
    image = ec2.create_image(InstanceId=instance["InstanceId"], Name="img")["ImageId"]
    snapshot = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.deregister_image(ImageId=image)
    assert code(ec2.delete_snapshot, SnapshotId=snapshot) == "InvalidSnapshot.InUse"
    other = ec2.create_image(InstanceId=instance["InstanceId"], Name="img2")["ImageId"]
    its = ec2.describe_images(ImageIds=[other])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.deregister_image(ImageId=other, DeleteAssociatedSnapshots=True)
    assert its not in {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_a_launch_into_a_subnet_without_an_internet_route_is_recorded_offline(net, strict_aws):
    ec2 = net["ec2"]
    offline = launch(net, net["public"])["InstanceId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=net["public"])
    launch(net, net["public"])
    assert [r["instance"] for r in strict_aws.offline] == [offline]


def test_a_nat_route_left_pointing_at_a_dead_target_is_a_blackhole_and_an_egress_gap(net, strict_aws):
    ec2 = net["ec2"]
    nat = launch(net, net["public"])
    eni = nat["NetworkInterfaces"][0]["NetworkInterfaceId"]
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=net["private"])
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=eni)
    assert strict_aws.gaps == []
    ec2.terminate_instances(InstanceIds=[nat["InstanceId"]])
    route = [r for r in ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert route[0]["State"] == "blackhole"
    assert [(g["why"], g["after"]) for g in strict_aws.gaps] == [("blackhole", "TerminateInstances")]


def test_no_default_route_while_a_nat_mode_is_configured_is_an_egress_gap_but_not_in_mode_none(net, strict_aws):
    ec2 = net["ec2"]
    first = launch(net, net["public"])
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=net["private"])
    assert strict_aws.gaps == []  # still being built
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=first["NetworkInterfaces"][0]["NetworkInterfaceId"])
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    assert [(g["why"], g["after"]) for g in strict_aws.gaps] == [("no default route", "DeleteRoute")]
    strict_aws.reset()
    strict_aws.nat_mode = "none"
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=first["NetworkInterfaces"][0]["NetworkInterfaceId"])
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
    assert strict_aws.gaps == []


def test_the_strict_layer_and_one_request_at_a_time_are_both_on(monkeypatch, strict_aws):
    """faithful_moto() serialises moto's _dispatch; the strict layer wraps call_action, which _dispatch
    calls: installed in either order, neither undoes the other, and a strict refusal is still served
    one request at a time."""
    import threading

    from moto.core.responses import BaseResponse

    from awsprac.engine.sandbox import faithful_moto

    layer.install()
    faithful_moto()
    layer.install()
    assert getattr(BaseResponse._dispatch, "_awsprac", False)
    assert getattr(BaseResponse.call_action, "_strict", False)

    inside, most = [0], [0]
    guard = threading.Lock()
    strict_call = BaseResponse.call_action

    def counted(self):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        threading.Event().wait(0.2)
        try:
            return strict_call(self)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(BaseResponse, "call_action", counted)
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.0.0/24")
    codes = []

    def delete_vpc():
        try:
            ec2.delete_vpc(VpcId=vpc)
        except botocore.exceptions.ClientError as exc:
            codes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=delete_vpc) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == ["DependencyViolation"] * 3  # the strict rule: a VPC with a subnet cannot go
    assert most[0] == 1
