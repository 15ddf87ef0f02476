"""The application tier (the README's "Run the API"; docs/reference.md lists its resources): the API on ECS Fargate behind an Application Load Balancer.

A family of five steps, each registered in `awsprac.steps`:

- `app-iam` (iam.py): the ECS service-linked role, the task execution role with its secrets policy,
  the task role. No prerequisite, so IAM's propagation overlaps building the network.
- `app-network` (network.py): the ALB's and the backend's security groups.
- `app-alb` (alb.py): load balancer, target group, listener (AWS refuses a service whose target group
  has no listener). The load balancer is not waited for here: its provisioning overlaps the service's.
- `app` (service.py): cluster, log group (loggroup.py), task definition (taskdef.py), service; the
  service's first rollout and the load balancer's provisioning are waited for at the same time (and
  alongside the RDS create).
- `app-off` (off.py): with `[app] enabled = false`, a tier that still stands is taken down, in the
  order AWS requires (the steps above describe nothing then, and look at nothing).

Its other facets live here too: cost.py, export.py, park.py (stop/start), doctor.py, found by the
walkers on step `app` (service.py re-exports them; it is last in the registry, so `stop` parks the
service before the DB and the NAT instance, and `start` brings it back after them); status/outputs
come through each step's Observed. rollout.py is the one rollout watch, for `up` and `app deploy`;
common.py makes every name of the tier. Its command group (commands.py: deploy.py, logs.py, exec.py)
is `awsprac app`. Everything is off unless `[app] enabled = true`.

The registry loads the steps by their modules (steps.MODULES), so this module imports nothing: the
family's light modules (common.py, commands.py) load without the steps' boto3.
"""
