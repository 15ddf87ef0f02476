"""What AWS has, as lists kept here: regions and RDS engines with the majors each ever had.

An env file is checked against them before anything is sent, so a typo (`ap-northeast-9`, `podevres`,
`engine_major = "71"`) is one line naming the file, key and value, and never a resource built from it.
When AWS adds a region or a major, add it here.
"""

from __future__ import annotations

# Every region of the aws, aws-cn, aws-us-gov and aws-eusc partitions (as botocore's endpoints list them).
REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-west-1", "us-west-2",
    "cn-north-1", "cn-northwest-1",
    "us-gov-east-1", "us-gov-west-1",
    "eusc-de-east-1",
})

_ORACLE = ("11.2", "12.1", "12.2", "18", "19", "21")
_SQLSERVER = ("10.50", "11.00", "12.00", "13.00", "14.00", "15.00", "16.00")

# The engines CreateDBInstance makes a standalone instance of, and the majors (as `engine_major`
# spells them: PostgreSQL "9.6" then "10"...; MySQL "8.0") RDS has offered for each.
RDS_ENGINES: dict[str, tuple[str, ...]] = {
    "postgres": ("9.3", "9.4", "9.5", "9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"),
    "mysql": ("5.1", "5.5", "5.6", "5.7", "8.0", "8.4"),
    "mariadb": ("10.0", "10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.11", "11.4", "11.8"),
    **{engine: _ORACLE for engine in ("oracle-ee", "oracle-se2", "oracle-ee-cdb", "oracle-se2-cdb", "oracle-se", "oracle-se1")},
    **{engine: _SQLSERVER for engine in ("sqlserver-ee", "sqlserver-se", "sqlserver-ex", "sqlserver-web")},
    "db2-se": ("11.5",),
    "db2-ae": ("11.5",),
}
# Aurora's engines are RDS engines too, but their instances live in a cluster awsprac does not build.
AURORA_ENGINES = frozenset({"aurora", "aurora-mysql", "aurora-postgresql"})


def region_problem(region: str) -> str | None:
    """Why `region` is not a region one can use, or None. The caller names where it came from
    (the env file's `region` key, or the --region flag)."""
    if region in REGIONS:
        return None
    return f"{region!r} is not an AWS region (like ap-northeast-1 or us-east-1)"


def engine_problem(engine: str) -> str | None:
    if engine in RDS_ENGINES:
        return None
    if engine in AURORA_ENGINES:
        return f"{engine!r} is an Aurora engine: awsprac builds an RDS instance, not an Aurora cluster (postgres is the guide's)"
    return f"{engine!r} is not an RDS engine (RDS has: {', '.join(RDS_ENGINES)})"


def engine_major_problem(engine: str, major: str) -> str | None:
    majors = RDS_ENGINES.get(engine, ())
    if major in majors:
        return None
    return f"{major!r}: RDS {engine} never had that major version (it has had {', '.join(majors)})"
