"""The NAT instance's user data: rendered and inspected, and run for real as root inside network namespaces.

The namespace test builds   private host --- NAT (interfaces ens5 + ens6, no eth0) --- "internet" host
and runs the whole script in the NAT namespace (package manager and systemd stubbed, files moved to a
temporary folder), then checks a TCP connection from the private host reaches the internet host with the
NAT's address as its source. All addresses live only inside the namespaces this test makes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from awsprac.steps.nat import userdata as nat_userdata

from conftest import missing_capability, readline_within, stub_commands


@pytest.fixture
def script(cfg):
    return nat_userdata.render(cfg)


def test_rendered_script_is_valid_bash_for_this_vpc(script, tmp_path):
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert script.startswith("#!/bin/bash\n")
    assert 'VPC_CIDR="10.0.0.0/16"' in script


def test_script_follows_the_nat_recipe_without_its_known_failures(script):
    lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    code = "\n".join(lines)
    assert "eth0" not in code and "ens5" not in code, "no interface name may be hard-coded"
    assert not [line for line in lines if "iptables" in line and " -o " in line], "an empty interface variable would make `-o \"\"` match nothing"
    assert 'MASQUERADE=(-s "$VPC_CIDR" ! -d "$VPC_CIDR"' in code
    assert "dnf -y -q install iptables-services" in code and "INSTALL_ATTEMPTS=12" in code  # retried: dnf races cloud-init
    assert "/etc/sysctl.d/" in code and "net.ipv4.ip_forward = 1" in code
    assert "systemctl enable --now iptables" in code
    assert "iptables -F FORWARD" in code
    assert "iptables-save" in code and "/etc/sysconfig/iptables" in code
    assert not [line for line in lines if line.startswith("route ")] and "netstat" not in code  # may be missing on AL2023
    assert "ip -o -4 route show default" in code
    assert code.index("systemctl enable --now iptables") < code.index("configure_nat\n"), "the service loads its file before our rules go in"


def test_another_vpc_cidr_is_rendered(cfg):
    import dataclasses

    other = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, vpc_cidr="172.20.0.0/16"))
    assert 'VPC_CIDR="172.20.0.0/16"' in nat_userdata.render(other)


# --- for real, in network namespaces ---


def _can_use_namespaces() -> str:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux"
    for tool in ("ip", "iptables", "iptables-save", "sysctl"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install iproute2 iptables)"
    probe = f"awsp-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=30)
    if made.returncode != 0:
        return f"cannot make network namespaces here: {made.stderr.decode().strip()}"
    try:
        works = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-t", "nat", "-S"], capture_output=True, timeout=30)
        if works.returncode != 0:
            return f"iptables does not work in a network namespace here: {works.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return ""


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


class Lab:
    """Three namespaces: priv (10.0.128.10/18) -> nat (ens6 10.0.128.1, ens5 203.0.113.2) -> inet (203.0.113.1)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.priv, self.nat, self.inet = f"awsp-{tag}-priv", f"awsp-{tag}-nat", f"awsp-{tag}-inet"

    def ns(self, name: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", name, *args, **kw)

    def build(self) -> None:
        for name in (self.priv, self.nat, self.inet):
            sh("ip", "netns", "add", name)
            self.ns(name, "ip", "link", "set", "lo", "up")
        tag = self.priv.split("-")[1]
        # veth ends are made in the root namespace with short unique names, then moved and renamed.
        pairs = ((f"p{tag}", self.priv, "eth0", f"n{tag}", self.nat, "ens6"), (f"o{tag}", self.nat, "ens5", f"i{tag}", self.inet, "wan0"))
        for a, a_ns, a_name, b, b_ns, b_name in pairs:
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            for dev, ns, name in ((a, a_ns, a_name), (b, b_ns, b_name)):
                sh("ip", "link", "set", dev, "netns", ns)
                self.ns(ns, "ip", "link", "set", dev, "name", name)
                self.ns(ns, "ip", "link", "set", name, "up")
        self.ns(self.priv, "ip", "addr", "add", "10.0.128.10/18", "dev", "eth0")
        self.ns(self.priv, "ip", "route", "add", "default", "via", "10.0.128.1")
        self.ns(self.nat, "ip", "addr", "add", "10.0.128.1/18", "dev", "ens6")
        self.ns(self.nat, "ip", "addr", "add", "203.0.113.2/24", "dev", "ens5")
        self.ns(self.nat, "ip", "route", "add", "default", "via", "203.0.113.1")
        self.ns(self.inet, "ip", "addr", "add", "203.0.113.1/24", "dev", "wan0")
        # The internet knows no way back to the private subnet: only masquerading can make replies arrive.
        self.ns(self.nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        # iptables-services' stock rules: forwarding rejected.
        self.ns(self.nat, "iptables", "-A", "FORWARD", "-j", "REJECT")

    def destroy(self) -> None:
        for name in (self.priv, self.nat, self.inet):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)

    def source_address_seen_by_the_internet(self) -> str | None:
        """A TCP connection priv -> 203.0.113.1:8080; the server answers with the peer address it saw."""
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.inet, sys.executable, "-c", textwrap.dedent("""
                import socket
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("203.0.113.1", 8080)); s.listen(1); s.settimeout(8)
                print("listening", flush=True)
                c, (peer, _) = s.accept(); c.sendall(peer.encode()); c.close()
            """)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert readline_within(server.stdout, 30, "the internet host's listener").strip() == "listening"
            client = self.ns(self.priv, sys.executable, "-c", textwrap.dedent("""
                import socket, sys
                try:
                    c = socket.create_connection(("203.0.113.1", 8080), timeout=3)
                    print(c.recv(64).decode())
                except OSError as e:
                    print("FAILED", e)
            """), check=False)
            seen = client.stdout.strip()
            return None if seen.startswith("FAILED") else seen
        finally:
            server.kill()
            server.wait(timeout=10)


STUBS = {
    # rpm: not installed until dnf has succeeded once
    "rpm": '#!/bin/bash\n[ -f "$STUB_DIR/installed" ]\n',
    # dnf: busy (as at first boot) twice, then installs
    "dnf": '#!/bin/bash\necho "$*" >> "$STUB_DIR/dnf.log"\nn=$(wc -l < "$STUB_DIR/dnf.log")\n[ "$n" -ge 3 ] || { echo "Waiting for process with pid 1234 to finish." >&2; exit 1; }\ntouch "$STUB_DIR/installed"\n',
    "systemctl": '#!/bin/bash\necho "$*" >> "$STUB_DIR/systemctl.log"\n',
}


@pytest.fixture
def lab():
    reason = _can_use_namespaces()
    if reason:
        missing_capability(reason)
    lab = Lab()
    try:
        lab.build()
        yield lab
    finally:
        lab.destroy()


def test_the_script_makes_a_working_nat_and_is_safe_to_run_again(lab, script, tmp_path):
    stubs = stub_commands(tmp_path, STUBS)
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_DIR": str(tmp_path),
        "AWSPRAC_SYSCTL_FILE": str(tmp_path / "90-awsprac-nat.conf"),
        "AWSPRAC_RULES_FILE": str(tmp_path / "iptables"), "AWSPRAC_RETRY_DELAY": "0",
        "AWSPRAC_CONSOLE": str(tmp_path / "console"),
    }
    assert lab.source_address_seen_by_the_internet() is None, "no NAT yet: the private host cannot get out"

    def run_script():
        return subprocess.run(["ip", "netns", "exec", lab.nat, "bash", str(path)], env=env, capture_output=True, text=True, timeout=60)

    first = run_script()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "primary interface: ens5" in first.stdout
    assert nat_userdata.setup_result((tmp_path / "console").read_text()) == "finished", "the result `status` reads back"
    assert (tmp_path / "dnf.log").read_text().count("install iptables-services") == 3, "dnf retried while busy"
    assert (tmp_path / "systemctl.log").read_text() == "enable --now iptables\n"
    assert (tmp_path / "90-awsprac-nat.conf").read_text() == "net.ipv4.ip_forward = 1\n"
    assert lab.ns(lab.nat, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"

    assert lab.source_address_seen_by_the_internet() == "203.0.113.2", "the private host's traffic leaves with the NAT's address"

    second = run_script()
    assert second.returncode == 0, second.stdout + second.stderr
    nat_rules = [r for r in lab.ns(lab.nat, "iptables", "-t", "nat", "-S", "POSTROUTING").stdout.splitlines() if "MASQUERADE" in r]
    assert nat_rules == ["-A POSTROUTING -s 10.0.0.0/16 ! -d 10.0.0.0/16 -m comment --comment awsprac-nat -j MASQUERADE"]
    assert lab.ns(lab.nat, "iptables", "-S", "FORWARD").stdout.splitlines() == ["-P FORWARD ACCEPT"]
    saved = (tmp_path / "iptables").read_text()
    assert "-A POSTROUTING -s 10.0.0.0/16 ! -d 10.0.0.0/16 -m comment --comment awsprac-nat -j MASQUERADE" in saved
    assert "REJECT" not in saved
    assert lab.source_address_seen_by_the_internet() == "203.0.113.2"


def test_a_stale_rule_from_another_vpc_is_replaced(lab, script, tmp_path):
    """An AMI baked in one VPC, launched in another: the saved rule is for the old CIDR."""
    stale = ["-s", "172.31.0.0/16", "!", "-d", "172.31.0.0/16", "-m", "comment", "--comment", "awsprac-nat", "-j", "MASQUERADE"]
    lab.ns(lab.nat, "iptables", "-t", "nat", "-A", "POSTROUTING", *stale)
    lab.ns(lab.nat, "iptables", "-t", "nat", "-A", "POSTROUTING", *stale)
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    # Only the NAT part, sourced: the functions are usable without running main.
    result = subprocess.run(["ip", "netns", "exec", lab.nat, "bash", "-c", f"source {path} && configure_nat"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    nat_rules = [r for r in lab.ns(lab.nat, "iptables", "-t", "nat", "-S", "POSTROUTING").stdout.splitlines() if "MASQUERADE" in r]
    assert nat_rules == ["-A POSTROUTING -s 10.0.0.0/16 ! -d 10.0.0.0/16 -m comment --comment awsprac-nat -j MASQUERADE"]
    lab.ns(lab.nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    assert lab.source_address_seen_by_the_internet() == "203.0.113.2"


# `awsprac nat verify`'s own script, run for real in the NAT namespace: its parser judges what the
# commands really print, not outputs written by hand. Only what cannot run here is stood in for:
# systemd (answers from what the user data asked of it) and the HTTPS request to checkip, which goes
# to the lab's "internet" host instead (plain HTTP), still through the namespace's own routes.
VERIFY_STUBS = {
    "systemctl": ('#!/bin/bash\nif [ "$1" = is-enabled ]; then\n'
                  '    grep -qx "enable --now $2" "$STUB_DIR/systemctl.log" 2>/dev/null && echo enabled || { echo disabled; exit 1; }\n'
                  'else\n    echo "$*" >> "$STUB_DIR/systemctl.log"\nfi\n'),
    "curl": (
        f"#!{sys.executable}\n"
        "import sys, urllib.request\n"
        "try:\n"
        "    print(urllib.request.urlopen('http://203.0.113.1:8443/', timeout=5).status, end='')\n"
        "except OSError as e:\n"
        "    print(f'000curl: {e}', end='')\n"
    ),
}


def run_nat_verify_script(lab, tmp_path, env) -> list:
    from awsprac.steps.nat import verify as natverify

    result = subprocess.run(["ip", "netns", "exec", lab.nat, "bash", "-c", "\n".join(natverify.SCRIPT)],
                            env=env, capture_output=True, text=True, timeout=60)
    return natverify.judge({"Status": "Success" if result.returncode == 0 else "Failed", "StandardOutputContent": result.stdout,
                            "StandardErrorContent": result.stderr})


def test_nat_verify_judges_what_its_script_really_prints_before_and_after_the_user_data(lab, script, tmp_path):
    stubs = stub_commands(tmp_path, {**STUBS, **VERIFY_STUBS})
    (tmp_path / "user-data.sh").write_text(script)
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_DIR": str(tmp_path),
        "AWSPRAC_SYSCTL_FILE": str(tmp_path / "90-awsprac-nat.conf"),
        "AWSPRAC_RULES_FILE": str(tmp_path / "iptables"), "AWSPRAC_RETRY_DELAY": "0",
    }
    web = subprocess.Popen(["ip", "netns", "exec", lab.inet, sys.executable, "-u", "-c", textwrap.dedent("""
        import http.server
        server = http.server.HTTPServer(("203.0.113.1", 8443), http.server.SimpleHTTPRequestHandler)
        print("listening", flush=True)
        server.serve_forever()
    """)], stdout=subprocess.PIPE, stderr=open(tmp_path / "web.err", "w"), text=True, cwd=tmp_path)
    try:
        assert readline_within(web.stdout, 30, "the internet host's web server").strip() == "listening", (tmp_path / "web.err").read_text()
        before = {r.check.key: (r.ok, r.value) for r in run_nat_verify_script(lab, tmp_path, env)}
        assert before == {"ip_forward": (False, "0"), "masquerade": (False, ""), "iptables_enabled": (False, "disabled"),
                          "https": (True, "200")}, "a fresh instance: only its own way out works"

        configured = subprocess.run(["ip", "netns", "exec", lab.nat, "bash", str(tmp_path / "user-data.sh")], env=env,
                                    capture_output=True, text=True, timeout=60)
        assert configured.returncode == 0, configured.stdout + configured.stderr
        after = run_nat_verify_script(lab, tmp_path, env)
        assert [(r.check.key, r.ok) for r in after] == [("ip_forward", True), ("masquerade", True), ("iptables_enabled", True), ("https", True)]
        assert after[1].value == "-A POSTROUTING -s 10.0.0.0/16 ! -d 10.0.0.0/16 -m comment --comment awsprac-nat -j MASQUERADE"
        assert lab.source_address_seen_by_the_internet() == "203.0.113.2", "what verify passed really forwards"
    finally:
        web.kill()
        web.wait(timeout=10)
