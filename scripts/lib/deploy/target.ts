/**
 * The machine we deploy to: `local`, or an ssh destination reached with the
 * operator's key (BatchMode: never a password prompt). Commands are argument
 * arrays; for ssh each argument is quoted for the remote shell by one
 * function, so a value can never become shell syntax. Files travel with scp.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type RunOptions, type RunResult } from "../exec";
import type { ClientSettings } from "./settings";

export const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
/** ssh hands the remote shell one string: build it from an argument array here and nowhere else. */
export const remoteCommand = (argv: readonly string[]) => argv.map(shellQuote).join(" ");

export interface Target {
  kind: "local" | "ssh";
  label: string;
  exec(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** copy a local file to a path on the target */
  put(localPath: string, remotePath: string): Promise<void>;
  close(): Promise<void>;
}

export function sshOptions(s: Pick<ClientSettings, "sshPort" | "sshIdentity" | "sshKnownHosts">): string[] {
  const o = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15"];
  if (s.sshIdentity) o.push("-o", "IdentitiesOnly=yes", "-i", s.sshIdentity);
  if (s.sshKnownHosts) o.push("-o", `UserKnownHostsFile=${s.sshKnownHosts}`);
  return o;
}

/**
 * One ssh connection for the whole deploy: a master we start as our own child
 * (`-N`, stdio detached from ours, so it never holds our pipes open) and stop
 * by its pid. A fresh connection per command costs 0.1-1.5 s of key exchange.
 */
async function startMaster(s: Pick<ClientSettings, "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">): Promise<{ controlPath: string; stop: () => Promise<void> } | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "pgp-ssh-"));
  const controlPath = join(dir, "cm");
  const child = spawn("ssh", [...sshOptions(s), "-o", "ControlMaster=yes", "-o", `ControlPath=${controlPath}`, "-N", "-p", String(s.sshPort), s.host], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(controlPath) && child.exitCode === null && Date.now() < deadline) await Bun.sleep(50);
  const stop = async () => {
    if (child.exitCode === null && child.pid) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!existsSync(controlPath)) {
    await stop(); // unreachable or refused: commands connect on their own and report why
    return undefined;
  }
  return { controlPath, stop };
}

const muxOptions = (controlPath?: string) => (controlPath ? ["-o", "ControlMaster=no", "-o", `ControlPath=${controlPath}`] : []);

export const sshCommand = (s: Pick<ClientSettings, "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">, argv: readonly string[], controlPath?: string) => [
  "ssh", ...sshOptions(s), ...muxOptions(controlPath), "-p", String(s.sshPort), s.host, "--", remoteCommand(argv),
];

export const scpCommand = (s: Pick<ClientSettings, "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">, local: string, remote: string, controlPath?: string) => [
  "scp", "-q", ...sshOptions(s), ...muxOptions(controlPath), "-P", String(s.sshPort), local, `${s.host}:${remote}`,
];

export function openTarget(s: ClientSettings): Target {
  if (s.host === "local") {
    return {
      kind: "local",
      label: "local",
      exec: (argv, opts) => run(argv, opts),
      put: async (l, r) => void (await run(["cp", l, r])),
      close: async () => {},
    };
  }
  let master: Promise<Awaited<ReturnType<typeof startMaster>>> | undefined;
  const cp = async () => (await (master ??= startMaster(s)))?.controlPath;
  return {
    kind: "ssh",
    label: `${s.host}:${s.sshPort}`,
    exec: async (argv, opts) => run(sshCommand(s, argv, await cp()), { timeoutMs: 600_000, ...opts }),
    put: async (l, r) => void (await run(scpCommand(s, l, r, await cp()), { timeoutMs: 900_000 })),
    close: async () => {
      if (master) await (await master)?.stop();
      master = undefined;
    },
  };
}
