/**
 * The machine we deploy to: `local`, or an ssh destination reached with the
 * operator's key (BatchMode: never a password prompt). Commands are argument
 * arrays; for ssh each argument is quoted for the remote shell by one
 * function, so a value can never become shell syntax. Files travel with scp.
 */
import { mkdtempSync, rmSync } from "node:fs";
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

export function sshOptions(s: Pick<ClientSettings, "sshPort" | "sshIdentity" | "sshKnownHosts">, controlDir?: string): string[] {
  const o = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15"];
  if (s.sshIdentity) o.push("-o", "IdentitiesOnly=yes", "-i", s.sshIdentity);
  if (s.sshKnownHosts) o.push("-o", `UserKnownHostsFile=${s.sshKnownHosts}`);
  // One TCP+auth handshake for the whole deploy instead of one per command.
  if (controlDir) o.push("-o", "ControlMaster=auto", "-o", `ControlPath=${join(controlDir, "cm")}`, "-o", "ControlPersist=60");
  return o;
}

export const sshCommand = (s: Pick<ClientSettings, "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">, argv: readonly string[], controlDir?: string) => [
  "ssh", ...sshOptions(s, controlDir), "-p", String(s.sshPort), s.host, "--", remoteCommand(argv),
];

export const scpCommand = (s: Pick<ClientSettings, "host" | "sshPort" | "sshIdentity" | "sshKnownHosts">, local: string, remote: string, controlDir?: string) => [
  "scp", "-q", ...sshOptions(s, controlDir), "-P", String(s.sshPort), local, `${s.host}:${remote}`,
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
  const controlDir = mkdtempSync(join(tmpdir(), "pgp-ssh-"));
  return {
    kind: "ssh",
    label: `${s.host}:${s.sshPort}`,
    exec: (argv, opts) => run(sshCommand(s, argv, controlDir), { timeoutMs: 600_000, ...opts }),
    put: async (l, r) => void (await run(scpCommand(s, l, r, controlDir), { timeoutMs: 900_000 })),
    close: async () => {
      // Stop the shared connection this deploy opened (by its control socket, not by name).
      await run(["ssh", ...sshOptions(s, controlDir), "-p", String(s.sshPort), "-O", "exit", s.host], { nothrow: true, timeoutMs: 10_000 }).catch(() => {});
      rmSync(controlDir, { recursive: true, force: true });
    },
  };
}
