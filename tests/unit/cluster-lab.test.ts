import { describe, expect, test } from "bun:test";
import {
  LAB_HOSTS,
  LAB_NODES,
  LAB_SPARE,
  labNamespaces,
  labNode,
  linkCommand,
  networkCommands,
  sshdConfig,
  userCommands,
} from "../../scripts/lib/cluster/lab";

describe("namespace lab: commands as data", () => {
  test("the switch's bridge and each node's link live inside namespaces only", () => {
    expect(networkCommands([LAB_HOSTS[0]!]).map((c) => c.join(" "))).toEqual([
      "ip netns add pgplab-sw",
      "ip -n pgplab-sw link set lo up",
      "ip -n pgplab-sw link add pgplab-br type bridge",
      "ip -n pgplab-sw link set pgplab-br up",
      "ip netns add pgplab-h1",
      "ip -n pgplab-h1 link set lo up",
      "ip -n pgplab-sw link add pgplab-h1-p type veth peer name eth0 netns pgplab-h1",
      "ip -n pgplab-sw link set pgplab-h1-p master pgplab-br up",
      "ip -n pgplab-h1 addr add 10.231.0.11/24 dev eth0",
      "ip -n pgplab-h1 link set eth0 up",
    ]);
    // No command touches the root namespace: every link/addr command names a namespace.
    for (const c of networkCommands()) expect(c[1] === "netns" || c[1] === "-n").toBe(true);
  });

  test("hosts .11-.13, the spare .14, operator .5, every name with the lab prefix and within IFNAMSIZ", () => {
    expect(LAB_NODES.map((n) => `${n.ns} ${n.address} ${n.port}`)).toEqual([
      "pgplab-h1 10.231.0.11 pgplab-h1-p",
      "pgplab-h2 10.231.0.12 pgplab-h2-p",
      "pgplab-h3 10.231.0.13 pgplab-h3-p",
      "pgplab-h4 10.231.0.14 pgplab-h4-p",
      "pgplab-op 10.231.0.5 pgplab-op-p",
    ]);
    expect(LAB_HOSTS.map((n) => n.id)).toEqual(["h1", "h2", "h3"]);
    for (const n of LAB_NODES) expect(n.port.length).toBeLessThanOrEqual(15);
  });

  test("a cluster host is found by its address (after a replace the spare is a member)", () => {
    expect(labNode("10.231.0.14")).toBe(LAB_SPARE);
    expect(labNode("10.231.0.12").ns).toBe("pgplab-h2");
    expect(() => labNode("10.231.0.5")).toThrow("10.231.0.5 is not a host of the namespace lab");
  });

  test("a partition is the host's switch port taken down", () => {
    expect(linkCommand(LAB_HOSTS[1]!, false).join(" ")).toBe("ip -n pgplab-sw link set pgplab-h2-p down");
    expect(linkCommand(LAB_HOSTS[1]!, true).join(" ")).toBe("ip -n pgplab-sw link set pgplab-h2-p up");
  });

  test("each sshd listens only on its host's address, key-only, for the lab user", () => {
    const c = sshdConfig(LAB_HOSTS[2]!);
    expect(c).toContain("ListenAddress 10.231.0.13\n");
    expect(c).toContain("HostKey /var/lib/pgplab/h3/ssh/ssh_host_ed25519_key\n");
    expect(c).toContain("PidFile /var/lib/pgplab/h3/ssh/sshd.pid\n");
    expect(c).toContain("AllowUsers pgp-lab-ops pgp-lab-nosudo\n");
    expect(c).toContain("PasswordAuthentication no\n");
    expect(c).toContain("PermitRootLogin no\n");
  });

  test("the lab user has no password but is not locked (sshd refuses a `!` account)", () => {
    expect(userCommands().map((c) => c.join(" "))).toEqual([
      "useradd --create-home --home-dir /var/lib/pgplab/home --shell /bin/bash --password * pgp-lab-ops",
      "useradd --create-home --home-dir /var/lib/pgplab/home-nosudo --shell /bin/bash --password * pgp-lab-nosudo",
    ]);
  });

  test("leftovers are found by prefix and nothing else", () => {
    expect(labNamespaces("pgplab-h1 (id: 3)\nother-ns\npgplab-sw\npgplabx\n")).toEqual(["pgplab-h1", "pgplab-sw"]);
  });
});
