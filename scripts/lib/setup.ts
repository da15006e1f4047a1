/**
 * The OS packages the native runtime needs. As root (or with passwordless
 * sudo) on Debian/Ubuntu, missing ones are installed with apt; elsewhere the
 * error lists exactly what to install. When nothing is missing, nothing runs.
 */
import { existsSync, readFileSync } from "node:fs";
import { ToolkitError } from "./errors";
import { isRoot, run, which } from "./exec";
import { logLine } from "./ui";

/** [binary or path that proves the package is there, Debian package] */
export const OS_PACKAGES: [probe: string, pkg: string][] = [
  ["/usr/lib/postgresql/15/bin/postgres", "postgresql-15"],
  ["patroni", "patroni"],
  ["etcd", "etcd-server"],
  ["etcdctl", "etcd-client"],
  ["haproxy", "haproxy"],
  ["nginx", "nginx"],
  ["pgbackrest", "pgbackrest"],
  ["pgbouncer", "pgbouncer"],
  ["setpriv", "util-linux"],
  ["ss", "iproute2"],
  // etcd's mutual TLS: the stack's CA and certificates (scripts/lib/etcd-tls.ts).
  ["openssl", "openssl"],
  // Patroni's urllib3 needs it for https to etcd (python3-urllib3 only suggests it in Debian 12).
  ["/usr/lib/python3/dist-packages/idna", "python3-idna"],
];

/**
 * What `make test` needs besides the runtime: the deploy-client integration
 * test starts its own sshd on loopback and deploys over ssh/scp; TLS files
 * come from openssl; the PTY driver for the prompt tests is a python3 script;
 * the normal-user test runs the README as a user with sudo.
 */
export const TEST_PACKAGES: [probe: string, pkg: string][] = [
  ["/usr/sbin/sshd", "openssh-server"],
  ["ssh", "openssh-client"],
  ["scp", "openssh-client"],
  ["ssh-keygen", "openssh-client"],
  ["openssl", "openssl"],
  ["python3", "python3"],
  // the normal-user test gives its user passwordless sudo (a sudoers.d file it removes)
  ["sudo", "sudo"],
  // tests/unit/monitoring.test.ts: promtool test rules / check config, amtool check-config
  ["promtool", "prometheus"],
  ["amtool", "prometheus-alertmanager"],
  // tests/integration/images-local.test.ts: make images-local (rootful podman with runc, a debootstrapped base)
  ["podman", "podman"],
  // tests/integration/docker-runtime.test.ts: compose v1 against podman's API service
  ["docker-compose", "docker-compose"],
  ["runc", "runc"],
  ["debootstrap", "debootstrap"],
  // podman 4.3 on Debian 12 networks with CNI: without the dnsname plugin (a Recommends we do not get with
  // --no-install-recommends) containers cannot resolve each other's service names, and etcd's peers never meet.
  ["/usr/lib/cni/dnsname", "golang-github-containernetworking-plugin-dnsname"],
  // tests/integration/cluster-lab.test.ts: the namespace hosts share this machine's files but have no route
  // to Debian's archive, so what cluster-deploy would install there (HOST_PACKAGES) must be here already.
  ["vip-manager", "vip-manager"],
];

/** MONITORING=true (scripts/lib/monitoring/): Prometheus, Alertmanager and two exporters, run by dev-up. */
export const MONITORING_PACKAGES: [probe: string, pkg: string][] = [
  ["prometheus", "prometheus"],
  ["promtool", "prometheus"],
  ["prometheus-alertmanager", "prometheus-alertmanager"],
  ["amtool", "prometheus-alertmanager"],
  ["prometheus-postgres-exporter", "prometheus-postgres-exporter"],
  ["prometheus-node-exporter", "prometheus-node-exporter"],
];

/**
 * Debian starts (and enables) a service for each monitoring package, listening on every
 * address with its own config: the toolkit runs its own, on the stack's address. Stop and
 * disable Debian's: with systemd, or with the init scripts where there is none.
 */
export function serviceStopCommands(
  pkgs: string[],
  systemd: boolean,
  initScriptExists: (name: string) => boolean = (n) => existsSync(`/etc/init.d/${n}`),
): string[][] {
  const units = [...new Set(pkgs)].filter((p) => MONITORING_PACKAGES.some(([, pkg]) => pkg === p));
  if (units.length === 0) return [];
  if (systemd) return [["systemctl", "disable", "--now", ...units]];
  return units.filter(initScriptExists).flatMap((u) => [
    [`/etc/init.d/${u}`, "stop"],
    ["update-rc.d", u, "disable"],
  ]);
}

export interface PackageOptions {
  tests?: boolean;
  monitoring?: boolean;
}

const wanted = (opts: PackageOptions) => [
  ...OS_PACKAGES,
  ...(opts.tests ? TEST_PACKAGES : []),
  ...(opts.monitoring ? MONITORING_PACKAGES : []),
];

export async function missingPackages(opts: PackageOptions = {}): Promise<string[]> {
  const missing: string[] = [];
  for (const [probe, pkg] of wanted(opts)) {
    if (missing.includes(pkg)) continue;
    const found = probe.startsWith("/") ? existsSync(probe) : Boolean(await which(probe));
    if (!found) missing.push(pkg);
  }
  return missing;
}

export function isDebianLike(
  osRelease = existsSync("/etc/os-release") ? readFileSync("/etc/os-release", "utf8") : "",
): boolean {
  const id = osRelease.match(/^ID=(.*)$/m)?.[1]?.replace(/"/g, "") ?? "";
  const like = osRelease.match(/^ID_LIKE=(.*)$/m)?.[1]?.replace(/"/g, "") ?? "";
  return ["debian", "ubuntu"].includes(id) || /\b(debian|ubuntu)\b/.test(like);
}

/** Seconds apt-get waits for another apt run's dpkg lock (apt >= 1.9.11: DPkg::Lock::Timeout, apt.conf(5)). */
export const APT_LOCK_TIMEOUT_S = 600;

export async function ensureOsPackages(opts: PackageOptions & { quiet?: boolean } = {}): Promise<string[]> {
  const missing = await missingPackages(opts);
  if (missing.length === 0) return [];
  const list = missing.join(" ");
  if (!isDebianLike() || !(await which("apt-get"))) {
    throw new ToolkitError(
      "MISSING_PACKAGES",
      `missing OS packages: ${list}`,
      `install them with your package manager (Debian/Ubuntu names: ${list}), or use RUNTIME=docker with a Docker engine`,
    );
  }
  let prefix: string[] = [];
  if (!isRoot()) {
    const sudo = (await which("sudo")) && (await run(["sudo", "-n", "true"], { nothrow: true })).code === 0;
    if (!sudo)
      throw new ToolkitError(
        "MISSING_PACKAGES",
        `missing OS packages: ${list}`,
        `run as root, or: sudo apt-get install -y ${list}`,
      );
    prefix = ["sudo", "-n"];
  }
  if (!opts.quiet) logLine(`setup: installing ${list} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  // Another apt run (unattended-upgrades, a second make) is waited for, not a "Could not get lock" failure.
  const apt = [...prefix, "apt-get", "-o", `DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT_S}`];
  await run([...apt, "update", "-qq"], { env, timeoutMs: 1_200_000 });
  await run([...apt, "install", "-y", "-qq", "--no-install-recommends", ...missing], {
    env,
    timeoutMs: 1_200_000,
  });
  // Debian's monitoring services would listen on every address: ours run on the stack's only.
  for (const cmd of serviceStopCommands(missing, existsSync("/run/systemd/system")))
    await run([...prefix, ...cmd], { nothrow: true, timeoutMs: 60_000 });
  const still = await missingPackages(opts);
  if (still.length)
    throw new ToolkitError(
      "MISSING_PACKAGES",
      `apt-get ran but still missing: ${still.join(" ")}`,
      "check /var/log/apt/term.log",
    );
  await disableDebianServices(prefix, missing);
  if (!opts.quiet) logLine(`setup: installed ${list}`);
  return missing;
}

/**
 * Debian packages whose own service would start a second, unconfigured copy
 * next to the one the toolkit runs: the toolkit starts pgbouncer itself (one per
 * stack, its own config), so the package's pgbouncer.service is stopped and
 * disabled right after apt installs it. Only where systemd runs (not in CI
 * containers, where policy-rc.d already keeps it from starting).
 */
export const DEBIAN_SERVICES_TO_DISABLE = ["pgbouncer"];

async function disableDebianServices(prefix: string[], installed: string[]): Promise<void> {
  if (!existsSync("/run/systemd/system") || !(await which("systemctl"))) return;
  for (const svc of DEBIAN_SERVICES_TO_DISABLE.filter((p) => installed.includes(p))) {
    await run([...prefix, "systemctl", "disable", "--now", `${svc}.service`], { nothrow: true, timeoutMs: 60_000 });
  }
}
