/**
 * The machine we deploy to: `local`, or an ssh destination reached with the
 * operator's key (BatchMode: never a password prompt). Commands are argument
 * arrays; for ssh each argument is quoted for the remote shell by one
 * function, so a value can never become shell syntax. Files travel with scp.
 *
 * Host keys are pinned per client (clients/<name>/known_hosts, or
 * SSH_KNOWN_HOSTS): an unknown host is refused unless the operator asks for
 * first contact explicitly (TRUST_NEW_HOST=1), which records the key and
 * says so; a changed key is always refused. Agent and X11 forwarding are off.
 * A connection that fails reports ssh's own error line and what to do.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ToolkitError } from "../errors";
import { run, start, type RunOptions, type RunResult } from "../exec";
import { clientKnownHostsFile, type ClientSettings } from "./settings";

export const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
/** ssh hands the remote shell one string: build it from an argument array here and nowhere else. */
export const remoteCommand = (argv: readonly string[]) => argv.map(shellQuote).join(" ");

export interface Target {
  kind: "local" | "ssh";
  label: string;
  exec(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** copy a local file to a path on the target */
  put(localPath: string, remotePath: string): Promise<void>;
  /**
   * Reach the target before anything else (ssh: check the pinned host key,
   * authenticate, open the shared connection). Throws a ToolkitError carrying
   * ssh's own error line; `recorded` tells that a first-seen key was pinned.
   */
  connect(): Promise<{ recorded?: string }>;
  close(): Promise<void>;
}

type SshSettings = Pick<ClientSettings, "name" | "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">;

/** The client's pinned host keys: SSH_KNOWN_HOSTS, or clients/<name>/known_hosts (committed: host keys are public). */
export const knownHostsFile = (s: Pick<ClientSettings, "name" | "sshKnownHosts">) =>
  s.sshKnownHosts || clientKnownHostsFile(s.name);

/** How known_hosts names the target: `host`, or `[host]:port` off port 22. */
export function hostPattern(s: Pick<ClientSettings, "host" | "sshPort">): string {
  const host = s.host.slice(s.host.lastIndexOf("@") + 1);
  return s.sshPort === 22 ? host : `[${host}]:${s.sshPort}`;
}

/**
 * Options for every ssh and scp: only the client's pinned keys count (no
 * global or personal known_hosts), an unknown or changed key is refused
 * (`accept-new` only for an explicit first contact), and nothing of the
 * operator's machine (agent, X11) is forwarded to the customer's server.
 */
export function sshOptions(
  s: Pick<ClientSettings, "name" | "sshPort" | "sshIdentity" | "sshKnownHosts">,
  trustNewHost = false,
): string[] {
  const o = [
    "-o",
    "BatchMode=yes",
    "-o",
    `StrictHostKeyChecking=${trustNewHost ? "accept-new" : "yes"}`,
    "-o",
    `UserKnownHostsFile=${knownHostsFile(s)}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "HashKnownHosts=no", // the pinned file is committed and reviewed: names in clear
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=15",
  ];
  if (s.sshIdentity) o.push("-o", "IdentitiesOnly=yes", "-i", s.sshIdentity);
  return o;
}

/** The line of ssh's stderr that says why it failed (not the warning banner). Pure. */
export function sshErrorLine(stderr: string): string {
  const lines = stderr
    .replace(/\r/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^@+/.test(l));
  const key = [
    /Permission denied/,
    /Connection refused/,
    /Could not resolve hostname/,
    /timed out/i,
    /No route to host/,
    /Host key for .* has changed/,
    /No \S+ host key is known/,
    /Host key verification failed/,
    /Connection closed/,
    /kex_exchange_identification/,
  ];
  for (const re of key) {
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit;
  }
  return lines[lines.length - 1] ?? "ssh exited without a message";
}

/** A failed ssh connection as a ToolkitError: ssh's own line, and the fix for its kind. Pure. */
export function sshFailure(s: SshSettings, stderr: string, offered?: string): ToolkitError {
  const line = sshErrorLine(stderr);
  const dest = `${s.host}:${s.sshPort}`;
  const file = knownHostsFile(s);
  const pattern = hostPattern(s);
  const env = `clients/${s.name}/client.env`;
  const seen = offered ? ` The server now offers ${offered}.` : "";
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/.test(stderr)) {
    return new ToolkitError(
      "HOST_KEY_CHANGED",
      `ssh to ${dest}: the host key differs from the one pinned for ${pattern} in ${file}: another machine may be answering (a man in the middle), or the server was reinstalled; nothing was changed.${seen}`,
      `confirm the new fingerprint with the customer out of band; only then remove the old entry (ssh-keygen -R '${pattern}' -f ${file}) and re-run with TRUST_NEW_HOST=1 (make) or --trust-new-host`,
      line,
    );
  }
  if (/No \S+ host key is known|Host key verification failed/.test(stderr)) {
    return new ToolkitError(
      "HOST_KEY_UNKNOWN",
      `ssh to ${dest}: no host key is pinned for ${pattern} in ${file}; refusing a first-seen key without being asked; nothing was changed.${seen}`,
      `confirm the fingerprint with the customer (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then re-run once with TRUST_NEW_HOST=1 (make) or --trust-new-host to record it, and commit ${file}`,
      line,
    );
  }
  const fixes: [RegExp, string][] = [
    [
      /Permission denied/,
      `authorize the operator's key on the server (ssh-copy-id -p ${s.sshPort}${s.sshIdentity ? ` -i ${s.sshIdentity}` : ""} ${s.host}), or set SSH_IDENTITY in ${env} to a key it accepts`,
    ],
    [/Connection refused/, `nothing accepts ssh at ${dest}: start sshd on the server, or fix HOST/SSH_PORT in ${env}`],
    [/Could not resolve hostname/, `fix HOST in ${env} (a name this machine can resolve, or an address)`],
    [
      /timed out|No route to host/i,
      `${dest} does not answer: check the address, the network and the firewall (port ${s.sshPort}), or fix HOST/SSH_PORT in ${env}`,
    ],
  ];
  const fix =
    fixes.find(([re]) => re.test(line))?.[1] ??
    `run ssh -p ${s.sshPort} ${s.host} by hand to see why, then fix the server or ${env}`;
  return new ToolkitError("SSH_FAILED", `ssh to ${dest} failed: ${line}`, fix);
}

/** The key(s) a server offers, as fingerprints (informational: ssh-keyscan is not authenticated). */
async function offeredKeys(s: Pick<ClientSettings, "host" | "sshPort">): Promise<string | undefined> {
  const scan = await run(
    [
      "ssh-keyscan",
      "-T",
      "5",
      "-t",
      "ed25519,ecdsa,rsa",
      "-p",
      String(s.sshPort),
      s.host.slice(s.host.lastIndexOf("@") + 1),
    ],
    { nothrow: true, timeoutMs: 15_000 },
  ).catch(() => undefined);
  if (!scan?.stdout.trim()) return undefined;
  const fp = await run(["ssh-keygen", "-l", "-f", "-"], { input: scan.stdout, nothrow: true }).catch(() => undefined);
  const keys = (fp?.stdout ?? "")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c.length >= 4)
    .map((c) => `${c[c.length - 1]!.replace(/[()]/g, "")} ${c[1]}`);
  return keys.length ? keys.join(", ") : undefined;
}

/** The pinned entry for the target, as `TYPE SHA256:...` (undefined: not pinned). */
async function pinnedKey(s: SshSettings): Promise<string | undefined> {
  const file = knownHostsFile(s);
  if (!existsSync(file)) return undefined;
  const r = await run(["ssh-keygen", "-l", "-F", hostPattern(s), "-f", file], { nothrow: true });
  const line = r.stdout.split("\n").find((l) => l.trim() && !l.startsWith("#"));
  const c = line?.trim().split(/\s+/);
  return c && c.length >= 3 ? `${c[1]} ${c[2]}` : undefined;
}

/**
 * One ssh connection for the whole deploy: a master we start as our own child
 * (`-N`, stdio detached from ours, so it never holds our pipes open) and stop
 * by its pid. A fresh connection per command costs 0.1-1.5 s of key exchange.
 */
async function startMaster(
  s: SshSettings,
  trustNewHost: boolean,
): Promise<{ controlPath: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "pgp-ssh-"));
  const controlPath = join(dir, "cm");
  if (trustNewHost) mkdirSync(dirname(knownHostsFile(s)), { recursive: true });
  // stderr is ours to read (why it failed); stdin/stdout stay detached so it never holds our pipes open.
  const ssh = start(
    [
      "ssh",
      ...sshOptions(s, trustNewHost),
      "-o",
      "ControlMaster=yes",
      "-o",
      `ControlPath=${controlPath}`,
      "-N",
      "-p",
      String(s.sshPort),
      s.host,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const child = ssh.child;
  let stderr = "";
  child?.stderr?.on("data", (d) => (stderr += d));
  const deadline = Date.now() + 20_000;
  while (!existsSync(controlPath) && child?.exitCode === null && Date.now() < deadline) await Bun.sleep(50);
  const stop = async () => {
    if (child?.exitCode === null && child.pid) {
      child.kill("SIGTERM");
      await ssh;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!existsSync(controlPath)) {
    await stop();
    const key = /host key|HOST IDENTIFICATION/i.test(stderr) ? await offeredKeys(s) : undefined;
    throw sshFailure(s, stderr || `no connection within 20 s`, key);
  }
  return { controlPath, stop };
}

const muxOptions = (controlPath?: string) =>
  controlPath ? ["-o", "ControlMaster=no", "-o", `ControlPath=${controlPath}`] : [];

export const sshCommand = (s: SshSettings, argv: readonly string[], controlPath?: string) => [
  "ssh",
  ...sshOptions(s),
  ...muxOptions(controlPath),
  "-p",
  String(s.sshPort),
  s.host,
  "--",
  remoteCommand(argv),
];

export const scpCommand = (s: SshSettings, local: string, remote: string, controlPath?: string) => [
  "scp",
  "-q",
  ...sshOptions(s),
  ...muxOptions(controlPath),
  "-P",
  String(s.sshPort),
  local,
  `${s.host}:${remote}`,
];

export interface TargetOptions {
  /** first contact: record an unknown host key in the client's known_hosts (a changed key is still refused) */
  trustNewHost?: boolean;
}

export function openTarget(s: ClientSettings, opts: TargetOptions = {}): Target {
  if (s.host === "local") {
    return {
      kind: "local",
      label: "local",
      exec: (argv, o) => run(argv, o),
      put: async (l, r) => void (await run(["cp", l, r])),
      connect: async () => ({}),
      close: async () => {},
    };
  }
  let master: Promise<Awaited<ReturnType<typeof startMaster>>> | undefined;
  let recorded: string | undefined;
  const open = async () => {
    const before = opts.trustNewHost ? await pinnedKey(s) : "not asked";
    const m = await startMaster(s, Boolean(opts.trustNewHost));
    if (!before) {
      const now = await pinnedKey(s);
      if (now)
        recorded = `recorded the host key of ${hostPattern(s)} (${now}) in ${knownHostsFile(s)}: first contact, trusted because TRUST_NEW_HOST was given; commit the file`;
    }
    return m;
  };
  const cp = async () => (await (master ??= open())).controlPath;
  return {
    kind: "ssh",
    label: `${s.host}:${s.sshPort}`,
    exec: async (argv, o) => run(sshCommand(s, argv, await cp()), { timeoutMs: 600_000, ...o }),
    put: async (l, r) => void (await run(scpCommand(s, l, r, await cp()), { timeoutMs: 900_000 })),
    connect: async () => {
      await cp();
      return recorded ? { recorded } : {};
    },
    close: async () => {
      const m = master;
      master = undefined;
      if (m)
        await m.then(
          (x) => x.stop(),
          () => {},
        );
    },
  };
}
