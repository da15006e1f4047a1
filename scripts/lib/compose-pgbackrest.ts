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
 * `<compose> exec -T <member> sh -c <snippet> pgbackrest --config=<container's> --stanza=<stanza> <args>`:
 * pgBackRest in a member's container with the password on stdin (`input`: compose v1's `exec -e NAME`
 * does not take a value from our environment; stdin works in v1 and v2).
 */
export const dockerPgbackrestArgv = (
  cfg: Config,
  compose: (...args: string[]) => string[],
  member: string,
  args: string[],
): string[] =>
  compose(
    "exec",
    "-T",
    member,
    "sh",
    "-c",
    STANZA_SNIPPET,
    "pgbackrest",
    `--config=${CONTAINER.home}/pgbackrest.conf`,
    `--stanza=${cfg.backup.stanza}`,
    ...args,
  );

/** The last lines pgBackRest printed (its own words for a failure). */
const lastLines = (r: { stdout: string; stderr: string }) =>
  (r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ");

/**
 * dev-up: the stanza, then `pgbackrest check` (a WAL switch archived through Patroni's archive_command,
 * which proves the config path the command reads). Only the primary can create the stanza, so the
 * members are tried in turn; the last failure is reported with pgBackRest's own words.
 */
export async function ensureDockerStanza(cfg: Config, compose: (...args: string[]) => string[]): Promise<string> {
  let last = "";
  const input = `${cfg.secrets.POSTGRES_PASSWORD}\n`;
  for (const m of cfg.members) {
    const r = await run(dockerPgbackrestArgv(cfg, compose, m.name, ["stanza-create"]), {
      nothrow: true,
      timeoutMs: 120_000,
      input,
    });
    if (r.code !== 0) {
      last = lastLines(r);
      continue;
    }
    const check = await run(dockerPgbackrestArgv(cfg, compose, m.name, ["--archive-timeout=60", "check"]), {
      nothrow: true,
      timeoutMs: 180_000,
      input,
    });
    if (check.code !== 0)
      throw new ToolkitError(
        "ARCHIVE_FAILED",
        `pgBackRest stanza ${cfg.backup.stanza} exists but WAL archiving does not work (pgbackrest check on ${m.name}): ${lastLines(check)}`,
        `run \`docker compose logs ${m.name}\` and read archive_command in its patroni.yml`,
      );
    return `pgBackRest stanza ${cfg.backup.stanza} (on ${m.name}); WAL archiving checked`;
  }
  throw new ToolkitError(
    "STANZA_FAILED",
    `pgBackRest could not create stanza ${cfg.backup.stanza} on any member: ${last}`,
    "run `docker compose logs pg1 pg2 pg3`; WAL archiving waits for the stanza",
  );
}
