/**
 * Preflight on the target, read-only: OS, architecture, runtime (docker
 * engine + compose, or the native packages), free ports, disk, memory, clock.
 * Returns a table of pass / warn / fail rows; a `fail` is a blocker.
 */
import { resolveRuntime } from "../runtime";
import type { Target } from "./target";
import { profileForMemory, remoteLayout, type ClientSettings } from "./settings";

export type Status = "pass" | "warn" | "fail";
export interface PreflightRow {
  check: string;
  status: Status;
  detail: string;
}
export interface PreflightReport {
  target: string;
  rows: PreflightRow[];
  blockers: number;
  memTotalKb?: number;
  suggestedProfile?: "16" | "32" | "64";
  runtime?: "docker" | "native";
  /** the release `current` points at, if the client is deployed */
  currentRelease?: string;
}

/** The component names our stack's listeners run as (ss shows the process name). */
const OUR_PROCESSES = ["etcd", "patroni", "postgres", "haproxy", "nginx", "pgbouncer"];
const ARCH: Record<string, string> = { x64: "x86_64", arm64: "aarch64" };

export interface Listener {
  address: string;
  port: number;
  process: string;
}

export function parseListeners(ss: string): Listener[] {
  const out: Listener[] = [];
  for (const line of ss.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4) continue;
    const local = cols[3]!;
    const i = local.lastIndexOf(":");
    const address = local
      .slice(0, i)
      .replace(/^\[|\]$/g, "")
      .replace(/%.*$/, "");
    const port = Number(local.slice(i + 1));
    const process = line.match(/users:\(\("([^"]+)"/)?.[1] ?? "?";
    if (Number.isFinite(port)) out.push({ address, port, process });
  }
  return out;
}

/** Every address:port the client's platform will listen on. */
export function neededPorts(s: ClientSettings): { address: string; port: number; what: string }[] {
  const out = [];
  for (const [i, a] of s.memberAddresses.entries()) {
    for (const [port, what] of [
      [5432, "Postgres"],
      [8008, "Patroni REST"],
      [2379, "etcd client"],
      [2380, "etcd peer"],
    ] as const)
      out.push({ address: a, port, what: `${what} pg${i + 1}` });
  }
  out.push({ address: s.haproxy.address, port: s.haproxy.rwPort, what: "HAProxy read-write" });
  out.push({ address: s.haproxy.address, port: s.haproxy.roPort, what: "HAProxy read-only" });
  out.push({ address: s.haproxy.address, port: s.haproxy.statsPort, what: "HAProxy stats" });
  out.push({ address: s.api.address, port: s.api.port, what: "nginx API" });
  for (const env of ["dev", "staging", "production"] as const)
    out.push({ address: s.api.address, port: s.ports[env], what: `nginx ${env} (TLS)` });
  if (s.access === "public") out.push({ address: "0.0.0.0", port: 80, what: "nginx ACME challenge" });
  return out;
}

export function portConflicts(s: ClientSettings, listeners: Listener[], deployed: boolean): PreflightRow {
  const bad: string[] = [];
  let ours = 0;
  for (const n of neededPorts(s)) {
    const holder = listeners.find(
      (l) =>
        l.port === n.port &&
        (l.address === n.address || l.address === "0.0.0.0" || l.address === "*" || n.address === "0.0.0.0"),
    );
    if (!holder) continue;
    if (deployed && OUR_PROCESSES.includes(holder.process)) {
      ours++;
      continue;
    }
    bad.push(`${n.address}:${n.port} (${n.what}) held by ${holder.process}`);
  }
  if (bad.length) return { check: "ports", status: "fail", detail: bad.join("; ") };
  return {
    check: "ports",
    status: "pass",
    detail: ours
      ? `${neededPorts(s).length} needed; ${ours} held by this client's running stack`
      : `${neededPorts(s).length} needed, all free`,
  };
}

export async function preflight(t: Target, s: ClientSettings, now = () => Date.now()): Promise<PreflightReport> {
  const rows: PreflightRow[] = [];
  const rep: PreflightReport = { target: t.label, rows, blockers: 0 };
  const probe = (argv: string[]) => t.exec(argv, { nothrow: true, timeoutMs: 30_000 });

  const uname = await probe(["uname", "-sm"]);
  if (uname.code !== 0) {
    rows.push({
      check: "reach",
      status: "fail",
      detail: `cannot run commands on ${t.label}: ${(uname.stderr || uname.stdout).trim().split("\n").pop()}`,
    });
    rep.blockers = 1;
    return rep;
  }
  rows.push({ check: "reach", status: "pass", detail: `${t.kind === "ssh" ? "ssh" : "local"} ${t.label}` });
  const [kernel, arch] = uname.stdout.trim().split(/\s+/);
  const localArch = ARCH[process.arch] ?? process.arch;
  rows.push({
    check: "architecture",
    status: kernel === "Linux" && arch === localArch ? "pass" : "fail",
    detail:
      kernel !== "Linux"
        ? `${kernel}: the native runtime needs Linux`
        : arch === localArch
          ? `${arch} (matches the shipped node_modules)`
          : `${arch}: the release ships ${localArch} binaries (bun); deploy from a ${arch} machine`,
  });

  const osr = await probe(["cat", "/etc/os-release"]);
  const pretty = osr.stdout.match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? "unknown";
  const debianLike = /^(ID|ID_LIKE)="?[^\n]*\b(debian|ubuntu)\b/m.test(osr.stdout);
  rows.push({
    check: "os",
    status: debianLike ? "pass" : "warn",
    detail: debianLike ? pretty : `${pretty}: only Debian/Ubuntu package names are known`,
  });

  const id = await probe(["id", "-u"]);
  rows.push({
    check: "user",
    status: id.stdout.trim() === "0" ? "pass" : "fail",
    detail:
      id.stdout.trim() === "0"
        ? "root (Postgres runs as the postgres user)"
        : `uid ${id.stdout.trim()}: the native runtime needs root to run Postgres as postgres`,
  });

  const docker = await probe(["docker", "info", "--format", "{{.ServerVersion}}"]);
  const compose = docker.code === 0 ? await probe(["docker", "compose", "version", "--short"]) : undefined;
  const bins = ["etcd", "etcdctl", "patroni", "haproxy", "nginx", "pgbouncer", "openssl", "setpriv", "ss", "tar"];
  const which = await probe(["which", ...bins]);
  const found = new Set(
    which.stdout
      .split("\n")
      .map((l) => l.trim().split("/").pop())
      .filter(Boolean),
  );
  const pgBin = await probe(["test", "-x", "/usr/lib/postgresql/15/bin/postgres"]);
  const missing = bins.filter((b) => !found.has(b)).concat(pgBin.code === 0 ? [] : ["postgresql-15"]);
  const dockerOk = docker.code === 0 && compose?.code === 0;
  if (dockerOk && resolveRuntime(s.runtime, missing.length === 0, dockerOk) === "docker") {
    rep.runtime = "docker";
    rows.push({
      check: "runtime",
      status: "pass",
      detail: `docker ${docker.stdout.trim()} + compose ${compose!.stdout.trim()}`,
    });
  } else if (missing.length === 0) {
    rep.runtime = "native";
    rows.push({
      check: "runtime",
      status: "pass",
      detail: `native: etcd, patroni, postgresql-15, haproxy, nginx${s.runtime === "docker" ? " (RUNTIME=docker asked, no engine: native)" : docker.code === 0 ? "" : "; no docker engine"}`,
    });
  } else {
    rows.push({ check: "runtime", status: "fail", detail: `no docker engine and missing ${missing.join(", ")}` });
  }

  const mem = await probe(["cat", "/proc/meminfo"]);
  const kb = Number(mem.stdout.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  if (kb) {
    rep.memTotalKb = kb;
    rep.suggestedProfile = profileForMemory(kb);
    const gb = kb / 1024 / 1024;
    const need = Number(s.profile) * 0.9;
    rows.push({
      check: "memory",
      status: gb < 2 ? "fail" : gb < need ? "warn" : "pass",
      detail: `${gb.toFixed(1)} GB (profile ${s.profile} GB${rep.suggestedProfile !== s.profile ? `; memory suggests ${rep.suggestedProfile}` : ""})${gb < need ? ": below the profile's size" : ""}`,
    });
  } else rows.push({ check: "memory", status: "warn", detail: "could not read /proc/meminfo" });

  const l = remoteLayout(s);
  const candidates: string[] = [];
  for (let d = l.base; d !== "/"; d = d.slice(0, d.lastIndexOf("/")) || "/") candidates.push(d);
  candidates.push("/");
  const df = await probe(["df", "-Pk", ...candidates]);
  const dfLine = df.stdout
    .split("\n")
    .slice(1)
    .find((x) => x.trim());
  if (dfLine) {
    const availGb = Number(dfLine.trim().split(/\s+/)[3]) / 1024 / 1024;
    rows.push({
      check: "disk",
      status: availGb < 2 ? "fail" : availGb < 10 ? "warn" : "pass",
      detail: `${availGb.toFixed(1)} GB free at ${dfLine.trim().split(/\s+/).pop()}${availGb < 10 ? " (10 GB recommended)" : ""}`,
    });
  } else rows.push({ check: "disk", status: "warn", detail: "df gave no answer" });

  const cur = await probe(["readlink", l.current]);
  if (cur.code === 0 && cur.stdout.trim()) rep.currentRelease = cur.stdout.trim().split("/").pop();
  const ss = await probe(["ss", "-ltnpH"]);
  if (ss.code === 0) rows.push(portConflicts(s, parseListeners(ss.stdout), Boolean(rep.currentRelease)));
  else rows.push({ check: "ports", status: "fail", detail: "ss is not available (package iproute2)" });

  const ipa = await probe(["ip", "-o", "-4", "addr", "show"]);
  const own = new Set([...ipa.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!));
  const absent = [...new Set([...s.memberAddresses, s.haproxy.address, s.api.address])].filter(
    (a) => !a.startsWith("127.") && !own.has(a),
  );
  rows.push({
    check: "addresses",
    status: absent.length ? "fail" : "pass",
    detail: absent.length
      ? `not configured on the target: ${absent.join(", ")}`
      : "members, HAProxy and API addresses are local",
  });

  const t0 = now();
  const date = await probe(["date", "+%s.%N"]);
  const skew = Math.abs(Number(date.stdout.trim()) * 1000 - (t0 + now()) / 2) / 1000;
  const ntp = await probe(["timedatectl", "show", "-p", "NTPSynchronized", "--value"]);
  const synced = ntp.code === 0 ? ntp.stdout.trim() === "yes" : undefined;
  rows.push({
    check: "clock",
    status: skew > 30 ? "fail" : skew > 2 || synced === false ? "warn" : "pass",
    detail: `${skew.toFixed(2)} s from this machine; NTP ${synced === undefined ? "status unknown (no timedatectl/systemd)" : synced ? "synchronized" : "NOT synchronized"}`,
  });

  rep.blockers = rows.filter((r) => r.status === "fail").length;
  return rep;
}
