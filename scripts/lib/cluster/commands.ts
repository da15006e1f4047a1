/**
 * What runs on each host, as data: argument arrays for ssh (quoted for the
 * remote shell in one place, deploy/target.ts), every one through `sudo -n`
 * (the ssh user needs passwordless sudo; the plan checks it).
 *
 * Services are started by start-stop-daemon (Debian's dpkg ships it on every
 * host) with a pid file per service under the host's run dir, the service's
 * own user and its log file: the same commands on a real host and on a lab
 * host, where no systemd runs per namespace. A process is found by its pid
 * file, never by name: two lab hosts run the same programs on one kernel.
 */
import type { Cmd } from "../exec";
import { hostPaths, type FileOwner, type HostFile } from "./render";
import type { ClusterHost, ClusterSettings } from "./settings";

/** Debian 12 packages every host needs (plan lists the missing ones; deploy installs them). */
export const HOST_PACKAGES = [
  "postgresql-15",
  "patroni",
  "etcd-server",
  "etcd-client",
  "haproxy",
  "vip-manager",
] as const;
/** Programs the commands below call on each host. */
export const HOST_PROGRAMS = ["start-stop-daemon", "sha256sum", "install", "ip", "sysctl"] as const;

export type ServiceName = "etcd" | "patroni" | "haproxy" | "vip-manager";
/** Start order on a host; stop order is the reverse. */
export const SERVICES: ServiceName[] = ["etcd", "patroni", "haproxy", "vip-manager"];

export interface ServiceSpec {
  name: ServiceName;
  user: FileOwner;
  program: string;
  args: string[];
  /** the rendered file whose change needs the service restarted (or reloaded) */
  config: string;
}

export function serviceSpec(s: ClusterSettings, h: ClusterHost, name: ServiceName): ServiceSpec {
  const p = hostPaths(s, h);
  switch (name) {
    case "etcd":
      return { name, user: "etcd", program: "/usr/bin/etcd", args: ["--config-file", p.etcdYml], config: p.etcdYml };
    case "patroni":
      return { name, user: "postgres", program: "/usr/bin/patroni", args: [p.patroniYml], config: p.patroniYml };
    case "haproxy":
      // Started as root (it reads its 0600 config and binds), drops to `haproxy` (the config's user/group); -db: stay in the foreground.
      return {
        name,
        user: "root",
        program: "/usr/sbin/haproxy",
        args: ["-db", "-f", p.haproxyCfg],
        config: p.haproxyCfg,
      };
    case "vip-manager":
      return { name, user: "root", program: "/usr/bin/vip-manager", args: ["--config", p.vipYml], config: p.vipYml };
  }
}

export const pidFile = (s: ClusterSettings, h: ClusterHost, name: ServiceName) => `${hostPaths(s, h).run}/${name}.pid`;
export const logFile = (s: ClusterSettings, h: ClusterHost, name: ServiceName) => `${hostPaths(s, h).log}/${name}.log`;

const sudo = (...argv: string[]): Cmd => ["sudo", "-n", ...argv];

/** Start a service unless its pid file names a live process (--oknodo: already running is success). Pure. */
export function startCommand(s: ClusterSettings, h: ClusterHost, name: ServiceName): Cmd {
  const spec = serviceSpec(s, h, name);
  return sudo(
    "start-stop-daemon",
    "--start",
    "--oknodo",
    "--background",
    "--make-pidfile",
    "--pidfile",
    pidFile(s, h, name),
    "--chuid",
    spec.user,
    "--chdir",
    "/",
    "--output",
    logFile(s, h, name),
    "--startas",
    spec.program,
    "--",
    ...spec.args,
  );
}

/** Stop by pid file: TERM, then KILL after 20 s. Pure. */
export const stopCommand = (s: ClusterSettings, h: ClusterHost, name: ServiceName): Cmd =>
  sudo(
    "start-stop-daemon",
    "--stop",
    "--oknodo",
    "--remove-pidfile",
    "--pidfile",
    pidFile(s, h, name),
    "--retry",
    "TERM/20/KILL/5",
  );

/** Exit 0 while the service's pid file names a live process (start-stop-daemon's --status). Pure. */
export const runningCommand = (s: ClusterSettings, h: ClusterHost, name: ServiceName): Cmd =>
  sudo("start-stop-daemon", "--status", "--pidfile", pidFile(s, h, name));

/** Patroni re-reads its file on SIGHUP (a changed timing or pg_hba needs no restart). Pure. */
export const reloadPatroniCommand = (s: ClusterSettings, h: ClusterHost): Cmd =>
  sudo("start-stop-daemon", "--stop", "--signal", "HUP", "--oknodo", "--pidfile", pidFile(s, h, "patroni"));

/** Directories of a host, with owner and mode (created before any file is written). Pure. */
export function directoryCommands(s: ClusterSettings, h: ClusterHost): Cmd[] {
  const p = hostPaths(s, h);
  const dir = (path: string, owner: FileOwner, mode: string): Cmd =>
    sudo("install", "-d", "-m", mode, "-o", owner, "-g", owner, path);
  return [
    dir(p.etc, "root", "0755"),
    dir(p.tls.dir, "root", "0755"),
    dir(p.lib, "root", "0755"),
    dir(p.run, "root", "0755"),
    dir(p.log, "root", "0755"),
    dir(`${p.etc.slice(0, p.etc.lastIndexOf("/"))}`, "root", "0755"),
    dir(p.sysctl.slice(0, p.sysctl.lastIndexOf("/")), "root", "0755"),
    dir(p.etcdData, "etcd", "0700"),
    dir(p.pgDir, "postgres", "0700"),
    dir(p.pgSocket, "postgres", "0700"),
  ];
}

/** Write one file from stdin (the content never appears in argv): owner, group and mode at once. Pure. */
export const installFileCommand = (f: Pick<HostFile, "path" | "mode" | "owner">): Cmd =>
  sudo("install", "-m", f.mode.toString(8).padStart(4, "0"), "-o", f.owner, "-g", f.owner, "/dev/stdin", f.path);

/** The sha256 of each path (missing files are simply absent from the output). Pure. */
export const checksumCommand = (paths: string[]): Cmd => sudo("sha256sum", "--", ...paths);

/** HAProxy binds the VIP before the host holds it. Pure. */
export const nonlocalBindCommand = (): Cmd => sudo("sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1");

/** Install the missing packages (non-interactive; never an upgrade of others). Pure. */
export const aptInstallCommand = (packages: string[]): Cmd =>
  sudo("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends", ...packages);

/** The pid each service's pid file names (read with one command). Pure. */
export const pidsCommand = (s: ClusterSettings, h: ClusterHost): Cmd =>
  sudo(
    "sh",
    "-c",
    'for f in "$@"; do printf "%s %s\\n" "$f" "$(cat "$f" 2>/dev/null)"; done',
    "sh",
    ...SERVICES.map((n) => pidFile(s, h, n)),
  );

/** Parse pidsCommand's output into service -> pid (undefined: no pid file). Pure. */
export function parsePids(s: ClusterSettings, h: ClusterHost, out: string): Record<ServiceName, number | undefined> {
  const res = {} as Record<ServiceName, number | undefined>;
  for (const n of SERVICES) {
    const line = out.split("\n").find((l) => l.startsWith(`${pidFile(s, h, n)} `));
    const pid = Number(line?.split(" ")[1]);
    res[n] = Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }
  return res;
}

/** The last lines of a service's log. Pure. */
export const logsCommand = (s: ClusterSettings, h: ClusterHost, name: ServiceName, lines = 40): Cmd =>
  sudo("tail", "-n", String(lines), logFile(s, h, name));

/** Does the host hold the VIP? (`ip -o -4 addr show dev <iface>`, parsed by holdsVip). Pure. */
export const vipProbeCommand = (s: ClusterSettings): Cmd => ["ip", "-o", "-4", "addr", "show", "dev", s.vipInterface];
export const holdsVip = (s: Pick<ClusterSettings, "vip">, ipAddrOut: string) =>
  ipAddrOut.split("\n").some((l) => l.includes(` inet ${s.vip}/`));
