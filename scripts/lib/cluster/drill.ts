/**
 * make cluster-drill: one failure under a write load through the VIP, then
 * healed, with the figures HA is judged by. Scenarios:
 *   partition-leader          the leader's host cut off from the network
 *   kill-host                 every process of the leader's host killed at once (power off)
 *   partition-etcd-minority   the sync standby's host cut off (no failover may happen)
 * During the failure every host's Postgres is probed directly with a write
 * from inside its own network (not through Patroni's REST): two hosts
 * accepting in one round is a split brain. Acting on a host needs the
 * namespace lab (labActions): its switch cuts a link and `ip netns pids` is
 * exactly one host's processes; a real cluster has neither (see README).
 */
import { ToolkitError } from "../errors";
import { run, type Cmd } from "../exec";
import { clusterSecrets, deployCluster } from "./deploy";
import { withHosts } from "./cli";
import { multiHostRuntime } from "./index";
import { inNs, LAB_HOST_ROOT_PATTERN, labNode, linkCommand, powerOff, powerOn } from "./lab";
import { loadTableSql, lostWrites, startWriteLoad } from "./load";
import type { ClusterHost, ClusterSettings } from "./settings";
import type { ClusterStatus } from "./status";

export const DRILL_SCENARIOS = ["partition-leader", "kill-host", "partition-etcd-minority"] as const;
export type DrillScenario = (typeof DRILL_SCENARIOS)[number];
const LOAD_TABLE = "pgplatform_drill_load";
const PROBE_TABLE = "pgplatform_drill_probe";

export interface DrillResult {
  scenario: DrillScenario;
  victim: string;
  leaderBefore: string;
  leaderAfter: string;
  /** longest gap between two acknowledged writes through the VIP */
  writeGapMs: number;
  acked: number;
  lost: number[];
  /** probe rounds in which two or more hosts accepted a write */
  twoWritable: string[][];
  probeRounds: number;
  /** the isolated host's last accepted probe write after the cut (-1: none) */
  victimLastAcceptedMs: number;
  /** a new leader holding the VIP (undefined for the minority scenario) */
  newLeaderWithVipMs?: number;
  /** Patroni's own promotion time (its /history), from the cut */
  patroniPromotedMs?: number;
  /** from heal to 3 healthy members with a sync standby (the victim a replica) */
  rejoinMs: number;
  ms: number;
}

/** How the drill acts on a host. Only the lab has them (a real cluster: see the README). */
export interface HostActions {
  cut(h: ClusterHost): Promise<void>;
  heal(h: ClusterHost): Promise<void>;
  powerOff(h: ClusterHost): Promise<void>;
  powerOn(h: ClusterHost): Promise<void>;
  /** a command run inside the host's own network (the split-brain probe) */
  onHost(h: ClusterHost, argv: string[]): Cmd;
}

export const isLabCluster = (s: ClusterSettings) =>
  s.name === "lab" && s.hosts.every((h) => h.root === LAB_HOST_ROOT_PATTERN.replace("%a", h.address));

export function labActions(s: ClusterSettings): HostActions {
  if (!isLabCluster(s))
    throw new ToolkitError(
      "DRILL_NEEDS_LAB",
      `cluster ${s.name} is not the namespace lab: the drill cuts a host's link and kills every process of a host, which needs the lab's switch and network namespaces`,
      "run it on the lab (make cluster-lab; make cluster-drill CLUSTER=lab SCENARIO=...); on real hosts use make cluster-switchover and make cluster-rolling-restart, and cut a host at your provider's firewall by hand (see README)",
    );
  const node = (h: ClusterHost) => labNode(h.address);
  return {
    cut: async (h) => void (await run(linkCommand(node(h), false))),
    heal: async (h) => void (await run(linkCommand(node(h), true))),
    powerOff: async (h) => void (await powerOff(node(h))),
    powerOn: (h) => powerOn(node(h)),
    onHost: (h, argv) => inNs(node(h).ns, argv),
  };
}

export function parseScenario(v: string | undefined): DrillScenario {
  if (!DRILL_SCENARIOS.includes(v as DrillScenario))
    throw new ToolkitError(
      "BAD_SCENARIO",
      `SCENARIO=${v ?? ""}: no such drill`,
      `one of: ${DRILL_SCENARIOS.join(", ")}`,
    );
  return v as DrillScenario;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; await Bun.sleep(500)) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new ToolkitError(
        "DRILL_NOT_SETTLED",
        `${what}: not within ${timeoutMs / 1000} s`,
        "run make cluster-status CLUSTER=lab",
      );
  }
}

/** Patroni's /history on a member: when did the newest timeline begin. */
async function promotedAt(s: ClusterSettings, h: ClusterHost): Promise<number | undefined> {
  try {
    const r = await fetch(`http://${h.address}:${s.ports.patroni}/history`, { signal: AbortSignal.timeout(3000) });
    const rows = (await r.json()) as unknown[][];
    const ts = rows.at(-1)?.[3];
    return typeof ts === "string" ? Date.parse(ts.replace(" ", "T")) : undefined;
  } catch {
    return undefined;
  }
}

export async function drill(
  s: ClusterSettings,
  scenario: DrillScenario,
  actions: HostActions,
  log: (m: string) => void = () => {},
): Promise<DrillResult> {
  const t0 = Date.now();
  const runtime = multiHostRuntime(s.name);
  const status = () => runtime.status().catch(() => undefined);
  const before = await until("a healthy cluster before the drill", 60_000, async () => {
    const st = await status();
    return st?.health.ok ? st : undefined;
  });
  const password = clusterSecrets(s).POSTGRES_PASSWORD;
  const target = { host: s.vip, port: s.ports.rw, password, table: LOAD_TABLE };
  const psqlOn = (h: ClusterHost, sql: string) =>
    run(
      actions.onHost(h, [
        "timeout",
        "2",
        "psql",
        `host=${h.address} port=${s.ports.pg} user=postgres dbname=postgres connect_timeout=1`,
        "-XAtq",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
      ]),
      { env: { PGPASSWORD: password }, nothrow: true, timeoutMs: 8000 },
    );
  const leaderHost = s.hosts.find((h) => h.name === before.leader)!;
  for (const sql of [loadTableSql(LOAD_TABLE), `CREATE TABLE IF NOT EXISTS ${PROBE_TABLE} (round int)`]) {
    const r = await psqlOn(leaderHost, sql);
    if (r.code !== 0)
      throw new ToolkitError(
        "DRILL_SETUP_FAILED",
        `creating ${LOAD_TABLE} on ${leaderHost.name}`,
        undefined,
        r.stderr.trim(),
      );
  }
  const victim = s.hosts.find(
    (h) => h.name === (scenario === "partition-etcd-minority" ? before.syncStandby : before.leader),
  )!;
  const load = startWriteLoad({ ...target, firstId: Date.now() * 1000 });
  let healed = 0;
  let cut = 0;
  const rounds: string[][] = [];
  let victimLastAcceptedMs = -1;
  let after: ClusterStatus | undefined;
  let newLeaderWithVipMs: number | undefined;
  try {
    await until("the load writes", 20_000, async () => (load.acked.length > 20 ? true : undefined));
    if (scenario === "kill-host") await actions.powerOff(victim);
    else await actions.cut(victim);
    cut = Date.now();
    log(`${scenario}: ${victim.name} ${scenario === "kill-host" ? "powered off" : "cut off"}`);
    const probeFor = Math.max(20_000, 2 * s.timing.ttl * 1000);
    const probing = (async () => {
      for (let n = 1; Date.now() - cut < probeFor; n++) {
        const res = await Promise.all(
          s.hosts.map((h) => psqlOn(h, `INSERT INTO ${PROBE_TABLE} (round) VALUES (${n})`)),
        );
        const accepted = s.hosts.filter((_, i) => res[i]!.code === 0).map((h) => h.name);
        rounds.push(accepted);
        if (accepted.includes(victim.name)) victimLastAcceptedMs = Date.now() - cut;
        await Bun.sleep(300);
      }
    })();
    if (scenario === "partition-etcd-minority") {
      await probing;
      after = await status();
      if (after?.leader !== before.leader || after?.vipHolder !== before.leader)
        throw new ToolkitError(
          "DRILL_WRONG_FAILOVER",
          `isolating the sync standby ${victim.name} moved the leader or the VIP (${after?.leader ?? "none"}, VIP on ${after?.vipHolder ?? "none"})`,
          "see Patroni's logs (make cluster-status CLUSTER=lab)",
        );
    } else {
      after = await until("a new leader holding the VIP", 90_000, async () => {
        const st = await status();
        return st?.leader && st.leader !== victim.name && st.vipHolder === st.leader ? st : undefined;
      });
      newLeaderWithVipMs = Date.now() - cut;
      log(`${after.leader} leads with the VIP after ${(newLeaderWithVipMs / 1000).toFixed(1)} s`);
      await probing;
    }
    if (scenario === "kill-host") {
      await actions.powerOn(victim);
      healed = Date.now();
      await withHosts(s, false, (conns) => deployCluster(s, conns)); // starts the dead host's services again
    } else {
      await actions.heal(victim);
      healed = Date.now();
    }
    const oldTl = before.members.find((m) => m.name === victim.name)?.timeline ?? 0;
    await until(`${victim.name} back as a replica with 3 healthy members`, 180_000, async () => {
      const st = await status();
      const m = st?.members.find((x) => x.name === victim.name);
      const tlOk = scenario === "partition-etcd-minority" || (m?.timeline ?? 0) > oldTl;
      return st?.health.ok && m && m.role !== "leader" && tlOk ? st : undefined;
    });
  } finally {
    if (cut && !healed)
      await (scenario === "kill-host" ? actions.powerOn(victim) : actions.heal(victim)).catch(() => {});
  }
  const rejoinMs = Date.now() - healed;
  const { acked, maxGapMs } = await load.stop();
  const lost = await lostWrites(target, acked);
  const newLeader = s.hosts.find((h) => h.name === after?.leader);
  const promoted = newLeader && scenario !== "partition-etcd-minority" ? await promotedAt(s, newLeader) : undefined;
  return {
    scenario,
    victim: victim.name,
    leaderBefore: before.leader!,
    leaderAfter: after!.leader!,
    writeGapMs: maxGapMs,
    acked: acked.length,
    lost,
    twoWritable: rounds.filter((r) => r.length > 1),
    probeRounds: rounds.length,
    victimLastAcceptedMs,
    newLeaderWithVipMs,
    patroniPromotedMs: promoted && promoted > cut ? promoted - cut : undefined,
    rejoinMs,
    ms: Date.now() - t0,
  };
}
