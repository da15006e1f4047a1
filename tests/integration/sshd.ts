/**
 * A throwaway sshd for the deploy tests: its own host key, one authorized
 * client key, listening on one of the deploy block's addresses (127.0.7.x).
 * Started as our child and stopped by its pid.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const keygen = (file: string, comment = "pgp-deploy-test") => {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ssh-keygen ${file}: ${r.stderr}`);
  return file;
};

export interface Sshd {
  addr: string;
  port: number;
  /** the host key as known_hosts holds it: `ssh-ed25519 AAAA...` */
  hostKey: string;
  stop(): Promise<void>;
}

async function waitPort(host: string, port: number, ms: number, proc: ChildProcess) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null)
      throw new Error(`sshd on ${host}:${port} exited (${proc.exitCode}): is the port held by another program?`);
    const ok = await new Promise<boolean>((res) => {
      const s = require("node:net").connect({ host, port }, () => {
        s.end();
        res(true);
      });
      s.on("error", () => res(false));
    });
    if (ok) return;
    await Bun.sleep(100);
  }
  throw new Error(`${host}:${port} not listening`);
}

/** Start sshd on addr:port with a fresh host key (in dir/<name>), authorizing `clientPub`. */
export async function startSshd(
  dir: string,
  addr: string,
  port: number,
  clientPub: string,
  name = "sshd",
): Promise<Sshd> {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege-separation dir (Debian's unit creates it)
  const hostKeyFile = join(d, "host_ed25519");
  if (!existsSync(hostKeyFile)) keygen(hostKeyFile, "host");
  writeFileSync(join(d, "authorized_keys"), readFileSync(clientPub), { mode: 0o600 });
  const conf = join(d, "sshd_config");
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      `ListenAddress ${addr}`,
      `HostKey ${hostKeyFile}`,
      `AuthorizedKeysFile ${join(d, "authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      `PidFile ${join(d, "sshd.pid")}`,
      "Subsystem sftp internal-sftp",
      "LogLevel ERROR",
    ].join("\n") + "\n",
  );
  const proc = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", conf], { stdio: ["ignore", "ignore", "pipe"] });
  proc.stderr!.on("data", () => {});
  await waitPort(addr, port, 10_000, proc);
  return {
    addr,
    port,
    hostKey: readFileSync(`${hostKeyFile}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" "),
    stop: async () => {
      if (proc.pid && proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        process.kill(proc.pid, "SIGTERM");
        await exited;
      }
    },
  };
}

/** An OS user for attack tests (created here, removed by the returned function); useradd retries while another holds the passwd lock. */
export async function makeUser(name: string): Promise<() => void> {
  spawnSync("userdel", ["-r", name], { encoding: "utf8" }); // a leftover of a killed run
  for (let i = 0; ; i++) {
    const r = spawnSync("useradd", ["-M", "-s", "/usr/sbin/nologin", name], { encoding: "utf8" });
    if (r.status === 0) break;
    if (i > 50) throw new Error(`useradd ${name}: ${r.stderr}`);
    await Bun.sleep(200);
  }
  return () => {
    for (let i = 0; i < 50; i++) {
      const r = spawnSync("userdel", [name], { encoding: "utf8" });
      if (r.status === 0 || /does not exist/.test(r.stderr)) return;
      spawnSync("sleep", ["0.2"]);
    }
  };
}

/** Run argv as `user` (no shell): exit code and the combined output. */
export function asUser(user: string, argv: string[]) {
  const r = spawnSync("runuser", ["-u", user, "--", ...argv], { encoding: "utf8", cwd: "/" });
  return { code: r.status ?? -1, out: ((r.stdout ?? "") + (r.stderr ?? "")).trim() };
}

/** A throwaway client's client.env for a deploy to this machine's own sshd (internal access, native runtime). */
export function writeTestClientEnv(
  clientsDir: string,
  o: { name: string; addr: string; port: number; key: string; remoteDir: string; members: string },
): void {
  mkdirSync(join(clientsDir, o.name), { recursive: true });
  writeFileSync(
    join(clientsDir, o.name, "client.env"),
    [
      `CLIENT_NAME=${o.name}`,
      `HOST=root@${o.addr}`,
      `SSH_PORT=${o.port}`,
      `SSH_IDENTITY=${o.key}`,
      `DOMAIN=${o.name}.internal`,
      "ACCESS=internal",
      "PROFILE=16",
      `REMOTE_DIR=${o.remoteDir}`,
      "RUNTIME=native",
      `MEMBER_ADDRESSES=${o.members}`,
      `HAPROXY_ADDRESS=${o.addr}`,
      `API_ADDRESS=${o.addr}`,
    ].join("\n") + "\n",
  );
}
