"""The NAT instance's user data: the shell script that makes an Amazon Linux 2023 instance a NAT.

It follows AWS's "NAT instance" recipe (iptables-services, forwarding in /etc/sysctl.d/, masquerade,
FORWARD opened, rules saved) and avoids that recipe's known failures:

- no interface name: the MASQUERADE rule matches the VPC's traffic leaving for outside the VPC
  (`-s CIDR ! -d CIDR`), so it works whatever the primary interface is called (`eth0` on Xen t2,
  `ens5` on Nitro), also in an AMI baked on one family and launched on the other, and an empty
  interface variable can never turn it into a rule that matches nothing;
- `dnf` races cloud-init's own package work at first boot: the install is retried;
- cloud-init runs user data once per instance, so it runs again on an instance launched from the
  baked AMI: every part is idempotent (one rule, tagged with a comment; stale ones replaced);
- a failed first boot is silent on AWS: the script says how it went on the instance's console
  (`awsprac-nat: setup started`, then `ready` or `setup FAILED ...`), which `status` reads back with
  ec2:GetConsoleOutput, a call of the CLI user's: the instance needs no permission for it.

The functions can be sourced on their own (the last line runs `main` only when the file is
executed), and the AWSPRAC_* variables move the files it writes: that is how the tests run the
script for real inside network namespaces.
"""

from __future__ import annotations

from awsprac.config import EnvConfig

RULE_COMMENT = "awsprac-nat"
# What the script writes on the console (each line starts with MARK), read back by setup_result().
MARK = "awsprac-nat: "
STARTED, READY, FAILED = "setup started", "ready", "setup FAILED"

SCRIPT = r"""#!/bin/bash
# awsprac: makes this instance the NAT of VPC @VPC_CIDR@ (env @ENV@). Safe to run again.
# Log: /var/log/cloud-init-output.log (cloud-init), or run it by hand as root.
set -Eeuo pipefail

VPC_CIDR="@VPC_CIDR@"
COMMENT="@COMMENT@"
SYSCTL_FILE="${AWSPRAC_SYSCTL_FILE:-/etc/sysctl.d/90-awsprac-nat.conf}"
RULES_FILE="${AWSPRAC_RULES_FILE:-/etc/sysconfig/iptables}"
RETRY_DELAY="${AWSPRAC_RETRY_DELAY:-5}"
INSTALL_ATTEMPTS=12
CONSOLE="${AWSPRAC_CONSOLE:-/dev/console}"

log() { echo "awsprac-nat: $*"; }

# The result, on the console too: `awsprac status` reads it back (GetConsoleOutput).
result() {
    log "$*"
    { echo "awsprac-nat: $*" >> "$CONSOLE"; } 2>/dev/null || true
}

# Each part of main runs through `run`, so a failure names the part that failed.
STEP=start
run() {
    STEP="$1"
    "$@"
}

# The rule: VPC traffic going outside the VPC leaves with this instance's address. No `-o IFACE`.
MASQUERADE=(-s "$VPC_CIDR" ! -d "$VPC_CIDR" -m comment --comment "$COMMENT" -j MASQUERADE)

install_iptables_services() {
    local attempt
    for attempt in $(seq 1 "$INSTALL_ATTEMPTS"); do
        if rpm -q iptables-services >/dev/null 2>&1; then
            return 0
        fi
        if dnf -y -q install iptables-services; then
            return 0
        fi
        log "installing iptables-services failed (attempt $attempt of $INSTALL_ATTEMPTS; dnf may be busy at boot)"
        sleep $((RETRY_DELAY * attempt))
    done
    log "could not install iptables-services"
    return 1
}

enable_forwarding() {
    printf 'net.ipv4.ip_forward = 1\n' > "$SYSCTL_FILE"
    sysctl -q -w net.ipv4.ip_forward=1
}

our_rules() {
    iptables -t nat -S POSTROUTING | { grep -e "--comment $COMMENT" || true; }
}

configure_nat() {
    # Exactly one masquerade rule of ours: stale ones (another VPC CIDR, a duplicate) are removed first.
    if [ "$(our_rules | wc -l)" -ne 1 ] || ! iptables -t nat -C POSTROUTING "${MASQUERADE[@]}" 2>/dev/null; then
        local rules rule
        rules=$(our_rules)
        if [ -n "$rules" ]; then
            while read -r -a rule; do
                rule[0]=-D
                iptables -t nat "${rule[@]}"
            done <<< "$rules"
        fi
        iptables -t nat -A POSTROUTING "${MASQUERADE[@]}"
    fi
    # iptables-services' stock rules REJECT forwarded packets: a NAT forwards everything it is sent
    # (its security group only lets the private subnets in).
    iptables -F FORWARD
    iptables -P FORWARD ACCEPT
}

save_rules() {
    iptables-save > "$RULES_FILE.awsprac-new"
    mv -f "$RULES_FILE.awsprac-new" "$RULES_FILE"
}

primary_interface() {
    ip -o -4 route show default | awk '{print $5; exit}'
}

main() {
    trap 'result "@FAILED@ at $STEP (exit $?)"' ERR
    result "@STARTED@"
    run install_iptables_services
    # Enabled before our rules go in: starting the service loads the saved (or stock) rules file.
    run systemctl enable --now iptables
    run enable_forwarding
    run configure_nat
    run save_rules
    trap - ERR
    result "@READY@: forwarding on, masquerading $VPC_CIDR to outside the VPC (primary interface: $(primary_interface || true))"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
"""


def render(cfg: EnvConfig) -> str:
    return (
        SCRIPT.replace("@VPC_CIDR@", cfg.network.vpc_cidr)
        .replace("@ENV@", cfg.env)
        .replace("@COMMENT@", RULE_COMMENT)
        .replace("@STARTED@", STARTED).replace("@READY@", READY).replace("@FAILED@", FAILED)
    )


def setup_result(console: str) -> str | None:
    """How the user data's NAT setup went, from the instance's console output: "finished", "failed at
    <part> (exit N)", "not finished" (started, no result: still running, or cut off by a stop), or None when the
    output holds no result (a sandbox, a console captured before the script ran, a reboot since)."""
    lines = [line.split(MARK, 1)[1].strip() for line in console.splitlines() if MARK in line]
    results = [line for line in lines if line == STARTED or line.startswith((READY + ":", FAILED))]
    if not results:
        return None
    last = results[-1]
    if last.startswith(READY + ":"):
        return "finished"
    if last.startswith(FAILED):
        return "failed" + last[len(FAILED):]
    return "not finished"
