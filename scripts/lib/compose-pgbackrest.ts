/**
 * WAL archiving in the docker runtime. Patroni's archive_command is the same
 * on every runtime: `pgbackrest --config="$PWD/../../pgbackrest/pgbackrest.conf"`,
 * run inside the data dir. In a member container the data dir is
 * /home/postgres/data, so the config must be /home/pgbackrest/pgbackrest.conf:
 * compose/dev.yml mounts the shared `pgbackrest` volume (repository, logs,
 * locks) at /home/pgbackrest and this module's rendered config over it; the
 * image creates /home/pgbackrest owned by postgres. The stanza is created on
 * the leader once the cluster answers (archive-push fails until it exists).
 */
import { join } from "node:path";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { run } from "./exec";
import { renderPgbackrestConf } from "./backup/pgbackrest";

/** Paths inside a member container (compose/patroni/Dockerfile creates them). */
export const CONTAINER = {
  home: "/home/pgbackrest",
  repo: "/home/pgbackrest/repo",
  dataDir: "/home/postgres/data",
  socketDir: "/home/postgres/run",
  pgPort: 5432,
};

/** The member's own data dir is its only pg1: each container sees only its own. */
export function dockerPgbackrestConf(cfg: Config): string {
  const member = {
    ...cfg.members[0]!,
    dataDir: CONTAINER.dataDir,
    socketDir: CONTAINER.socketDir,
    pgPort: CONTAINER.pgPort,
  };
  return renderPgbackrestConf({
    ...cfg,
    members: [member],
    backup: { ...cfg.backup, repoDir: CONTAINER.repo, pgbackrestHome: CONTAINER.home },
  });
}

export const dockerPgbackrestFile = (dir: string) => join(dir, "pgbackrest", "pgbackrest.conf");

/** Inside the container (sh: dash in the Debian image): the superuser's password arrives on stdin, never in argv. */
export const STANZA_SNIPPET = 'IFS= read -r PGPASSWORD && export PGPASSWORD && exec pgbackrest "$@"';

/**
 * `<compose> exec -T <member> sh -c <snippet> pgbackrest ... stanza-create`, the password on stdin
 * (compose v1's `exec -e NAME` does not take a value from our environment; stdin works in v1 and v2).
 * Only the primary can create the stanza, so the members are tried in turn; the last failure is
 * reported with pgBackRest's own words.
 */
export async function ensureDockerStanza(cfg: Config, compose: (...args: string[]) => string[]): Promise<string> {
  let last = "";
  for (const m of cfg.members) {
    const argv = compose(
      "exec",
      "-T",
      m.name,
      "sh",
      "-c",
      STANZA_SNIPPET,
      "pgbackrest",
      `--config=${CONTAINER.home}/pgbackrest.conf`,
      `--stanza=${cfg.backup.stanza}`,
      "stanza-create",
    );
    const r = await run(argv, { nothrow: true, timeoutMs: 120_000, input: `${cfg.secrets.POSTGRES_PASSWORD}\n` });
    if (r.code === 0) return `pgBackRest stanza ${cfg.backup.stanza} (on ${m.name})`;
    last = (r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ");
  }
  throw new ToolkitError(
    "STANZA_FAILED",
    `pgBackRest could not create stanza ${cfg.backup.stanza} on any member: ${last}`,
    "run `docker compose logs pg1 pg2 pg3`; WAL archiving waits for the stanza",
  );
}
