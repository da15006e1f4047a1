/**
 * The namespace lab: three "hosts" and an operator on one machine, joined by
 * a bridge, with nothing visible from the root namespace.
 *
 *   pgplab-sw   switch namespace holding the bridge pgplab-br and one port
 *               (veth pgplab-<node>-p) per node; the veth's other end is
 *               created straight inside the node's namespace as eth0, so no
 *               veth ever exists in the root namespace
 *   pgplab-h1..3  hosts 10.231.0.11-13, each with its own sshd on port 22: the cluster
 *   pgplab-h4   a spare host 10.231.0.14 (sshd, same user and key): the NEW of
 *               `make cluster-replace`; not in clusters/lab/cluster.env
 *   pgplab-op   operator 10.231.0.5: the toolkit runs here (ip netns exec)
 *
 * A partition is a port taken down in the switch; a dead host is every pid
 * of its namespace killed (`ip netns pids`: exactly that host's processes).
 * All hosts share this machine's filesystem, so each keeps its files under
 * its own root (/var/lib/pgplab/<address>/root): the deploy's HOST_ROOT, which
 * is / on a real host. Keyed by address, not position, so a replacement host
 * taking a member's place in HOSTS never shares the old host's files. The commands are data (unit-tested); labUp/labDown run them.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ToolkitError } from "../errors";
import { run, type Cmd } from "../exec";

export const LAB_PREFIX = "pgplab";
export const LAB_DIR = "/var/lib/pgplab";
export const LAB_USER = "pgp-lab-ops";
/** A second login with the same key and no sudo at all: a real host "without sudo" for the plan's NO_SUDO. */
export const LAB_NOSUDO_USER = "pgp-lab-nosudo";
const LAB_USERS = [LAB_USER, LAB_NOSUDO_USER];
export const LAB_SUBNET = "10.231.0";
export const LAB_VIP = `${LAB_SUBNET}.50`;
export const SWITCH_NS = `${LAB_PREFIX}-sw`;
export const BRIDGE = `${LAB_PREFIX}-br`;
export const SUDOERS_FILE = `/etc/sudoers.d/${LAB_USER}`;

export interface LabNode {
  /** h1, h2, h3, op */
  id: string;
  ns: string;
  address: string;
  /** the node's port on the switch (its link: down = partitioned) */
  port: string;
}

const node = (id: string, octet: number): LabNode => ({
  id,
  ns: `${LAB_PREFIX}-${id}`,
  address: `${LAB_SUBNET}.${octet}`,
  port: `${LAB_PREFIX}-${id}-p`,
});
export const LAB_HOSTS: LabNode[] = [node("h1", 11), node("h2", 12), node("h3", 13)];
/** The spare: a fourth host with sshd, outside the cluster, for `make cluster-replace`. */
export const LAB_SPARE: LabNode = node("h4", 14);
export const LAB_OPERATOR: LabNode = node("op", 5);
export const LAB_NODES = [...LAB_HOSTS, LAB_SPARE, LAB_OPERATOR];
/** Every lab host that runs an sshd: the cluster's three and the spare. */
const SSH_HOSTS = [...LAB_HOSTS, LAB_SPARE];

/** The lab node with this address (a cluster host is found by address: a replace moves a member to the spare). */
export function labNode(address: string): LabNode {
  const n = SSH_HOSTS.find((x) => x.address === address);
  if (!n)
    throw new ToolkitError(
      "NOT_A_LAB_HOST",
      `${address} is not a host of the namespace lab`,
      `lab hosts: ${SSH_HOSTS.map((x) => x.address).join(", ")}`,
    );
  return n;
}

/** Where each lab host keeps its files: its sshd, and (root/) everything the deploy installs. */
export const hostDir = (h: LabNode) => join(LAB_DIR, h.id);
/** The deploy's HOST_ROOT of a lab host (%a: its address), written into clusters/lab/cluster.env as a pattern. */
export const LAB_HOST_ROOT_PATTERN = `${LAB_DIR}/%a/root`;
export const operatorKey = join(LAB_DIR, "op", "id_ed25519");
export const authorizedKeys = join(LAB_DIR, "authorized_keys");

/** The switch and its bridge, then one link per node. Pure. */
export function networkCommands(nodes: LabNode[] = LAB_NODES): Cmd[] {
  const cmds: Cmd[] = [
    ["ip", "netns", "add", SWITCH_NS],
    ["ip", "-n", SWITCH_NS, "link", "set", "lo", "up"],
    ["ip", "-n", SWITCH_NS, "link", "add", BRIDGE, "type", "bridge"],
    ["ip", "-n", SWITCH_NS, "link", "set", BRIDGE, "up"],
  ];
  for (const n of nodes) {
    cmds.push(
      ["ip", "netns", "add", n.ns],
      ["ip", "-n", n.ns, "link", "set", "lo", "up"],
      // Created inside the switch with its peer placed straight into the node: never in the root namespace.
      ["ip", "-n", SWITCH_NS, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.ns],
      ["ip", "-n", SWITCH_NS, "link", "set", n.port, "master", BRIDGE, "up"],
      ["ip", "-n", n.ns, "addr", "add", `${n.address}/24`, "dev", "eth0"],
      ["ip", "-n", n.ns, "link", "set", "eth0", "up"],
    );
  }
  return cmds;
}

/** One lab host's sshd: its own config, host key and pid file, listening only on its address. Pure. */
export function sshdConfig(h: LabNode): string {
  const d = join(hostDir(h), "ssh");
  return [
    `# sshd of lab host ${h.id} (network namespace ${h.ns}); written by scripts/lib/cluster/lab.ts`,
    `ListenAddress ${h.address}`,
    "Port 22",
    `HostKey ${d}/ssh_host_ed25519_key`,
    `PidFile ${d}/sshd.pid`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    `AllowUsers ${LAB_USERS.join(" ")}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin no",
    "UsePAM no",
    "StrictModes yes",
    "X11Forwarding no",
    "AllowAgentForwarding no",
    "Subsystem sftp internal-sftp",
    "",
  ].join("\n");
}

export const sshdCommand = (h: LabNode): Cmd => [
  "ip",
  "netns",
  "exec",
  h.ns,
  "/usr/sbin/sshd",
  "-f",
  join(hostDir(h), "ssh", "sshd_config"),
  "-E",
  join(hostDir(h), "ssh", "sshd.log"),
];

/** The lab's OS users: a shell, no password (`*`: key only, not "locked" for sshd); the first gets passwordless sudo. Pure. */
export const userCommands = (): Cmd[] =>
  LAB_USERS.map((u) => [
    "useradd",
    "--create-home",
    "--home-dir",
    join(LAB_DIR, u === LAB_USER ? "home" : "home-nosudo"),
    "--shell",
    "/bin/bash",
    "--password",
    "*",
    u,
  ]);
export const SUDOERS_LINE = `${LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n`;

/** A host's link on the switch: down = the host is cut off from everyone (a partition). Pure. */
export const linkCommand = (h: LabNode, up: boolean): Cmd => [
  "ip",
  "-n",
  SWITCH_NS,
  "link",
  "set",
  h.port,
  up ? "up" : "down",
];

/** Namespaces of the lab still present (by prefix): what labDown removes. Pure. */
export const labNamespaces = (ipNetnsList: string) =>
  ipNetnsList
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith(`${LAB_PREFIX}-`));

export async function nsPids(ns: string): Promise<number[]> {
  const r = await run(["ip", "netns", "pids", ns], { nothrow: true });
  return r.stdout
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Kill every process of a host namespace at once (a dead host); returns the pids killed. */
export async function killHost(ns: string): Promise<number[]> {
  const pids = await nsPids(ns);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  return pids;
}

/**
 * A host loses power: every process of its namespace killed at once and its
 * link down (a dead machine answers no ARP, also not for a VIP it held).
 * Returns the pids killed.
 */
export async function powerOff(h: LabNode): Promise<number[]> {
  const pids = await killHost(h.ns);
  await run(linkCommand(h, false));
  return pids;
}

/** Power back on: the interface as at boot (only the host's own address: a VIP does not survive a reboot), link up, sshd. */
export async function powerOn(h: LabNode): Promise<void> {
  await run(["ip", "-n", h.ns, "addr", "flush", "dev", "eth0"]);
  await run(["ip", "-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0"]);
  await run(linkCommand(h, true));
  await startSshd(h);
}

export async function startSshd(h: LabNode): Promise<void> {
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege-separation dir
  const r = await run(sshdCommand(h), { nothrow: true, timeoutMs: 20_000 });
  if (r.code !== 0) {
    const log = existsSync(join(hostDir(h), "ssh", "sshd.log"))
      ? readFileSync(join(hostDir(h), "ssh", "sshd.log"), "utf8")
      : r.stderr;
    throw new ToolkitError(
      "LAB_SSHD_FAILED",
      `sshd of lab host ${h.id} did not start`,
      "see the line above; `make cluster-lab-down` removes the lab",
      log.trim().split("\n").slice(-5).join("\n"),
    );
  }
}

export interface LabInfo {
  hosts: LabNode[];
  spare: LabNode;
  operator: LabNode;
  vip: string;
  user: string;
  identity: string;
  /** host keys of the lab's sshds, as known_hosts lines */
  knownHosts: string;
}

/** Build the lab (after removing any leftover one). On failure everything made so far is removed. */
export async function labUp(log: (s: string) => void = () => {}): Promise<LabInfo> {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    throw new ToolkitError(
      "LAB_NEEDS_ROOT",
      "the namespace lab needs root (ip netns, sshd, useradd)",
      "run `sudo make cluster-lab`",
    );
  }
  await labDown();
  try {
    for (const c of networkCommands()) await run(c, { timeoutMs: 20_000 });
    log(
      `network: switch ${SWITCH_NS} (bridge ${BRIDGE}), hosts ${LAB_HOSTS.map((h) => `${h.ns} ${h.address}`).join(", ")}, spare ${LAB_SPARE.ns} ${LAB_SPARE.address}, operator ${LAB_OPERATOR.ns} ${LAB_OPERATOR.address}`,
    );
    for (const c of userCommands()) await run(c, { timeoutMs: 20_000 });
    writeFileSync(SUDOERS_FILE, SUDOERS_LINE, { mode: 0o440 });
    await run(["visudo", "-cf", SUDOERS_FILE], { timeoutMs: 10_000 });
    mkdirSync(join(LAB_DIR, "op"), { recursive: true, mode: 0o700 });
    await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pgplab operator", "-f", operatorKey], {
      timeoutMs: 20_000,
    });
    writeFileSync(authorizedKeys, readFileSync(`${operatorKey}.pub`), { mode: 0o644 });
    // The hosts' sshds at once: each is a key generation and a start.
    const known = await Promise.all(
      SSH_HOSTS.map(async (h) => {
        const d = join(hostDir(h), "ssh");
        mkdirSync(d, { recursive: true, mode: 0o755 });
        await run(
          [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            `pgplab ${h.id}`,
            "-f",
            join(d, "ssh_host_ed25519_key"),
          ],
          { timeoutMs: 20_000 },
        );
        writeFileSync(join(d, "sshd_config"), sshdConfig(h), { mode: 0o644 });
        await startSshd(h);
        const pub = readFileSync(join(d, "ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/);
        return `${h.address} ${pub[0]} ${pub[1]}`;
      }),
    );
    log(
      `sshd on ${SSH_HOSTS.map((h) => `${h.address}:22`).join(", ")}; user ${LAB_USER} (key ${operatorKey}, passwordless sudo)`,
    );
    return {
      hosts: LAB_HOSTS,
      spare: LAB_SPARE,
      operator: LAB_OPERATOR,
      vip: LAB_VIP,
      user: LAB_USER,
      identity: operatorKey,
      knownHosts: known.join("\n") + "\n",
    };
  } catch (e) {
    await labDown();
    throw e;
  }
}

/**
 * Remove every trace of the lab, found by prefix (also a lab left by a
 * crashed run): the processes of its namespaces, the namespaces (their veths
 * and the bridge go with them), the lab user and its sudoers file, the lab's
 * files. Returns what it removed.
 */
export async function labDown(): Promise<string[]> {
  const removed: string[] = [];
  const list = await run(["ip", "netns", "list"], { nothrow: true });
  const spaces = labNamespaces(list.stdout);
  // Hosts first: the switch last, so no host is left half-connected while its processes die.
  for (const ns of spaces.sort((a, b) => Number(a === SWITCH_NS) - Number(b === SWITCH_NS))) {
    const pids = await killHost(ns);
    if (pids.length) removed.push(`${pids.length} process(es) of ${ns}`);
    for (let i = 0; i < 50 && (await nsPids(ns)).length; i++) await Bun.sleep(100);
    await run(["ip", "netns", "delete", ns], { nothrow: true });
    removed.push(`namespace ${ns}`);
  }
  if (existsSync(SUDOERS_FILE)) {
    rmSync(SUDOERS_FILE, { force: true });
    removed.push(SUDOERS_FILE);
  }
  for (const u of LAB_USERS) {
    if ((await run(["id", "-u", u], { nothrow: true })).code !== 0) continue;
    await run(["userdel", u], { nothrow: true });
    removed.push(`user ${u}`);
  }
  if (existsSync(LAB_DIR)) {
    rmSync(LAB_DIR, { recursive: true, force: true });
    removed.push(LAB_DIR);
  }
  return removed;
}

/** Run a command inside a lab namespace (the integration test probes hosts from inside). */
export const inNs = (ns: string, cmd: Cmd): Cmd => ["ip", "netns", "exec", ns, ...cmd];
