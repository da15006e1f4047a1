/**
 * The production cluster on three hosts, proven on the namespace lab: three
 * hosts with their own sshd and an operator namespace (scripts/lib/cluster/lab.ts),
 * deployed over real SSH from the operator namespace, then partition-leader
 * under a write load through the VIP. Runs only as root where `ip netns`
 * works; elsewhere it is skipped with the reason printed. The lab is always
 * torn down (afterAll), also after a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  LAB_HOST_ROOT_PATTERN,
  LAB_NOSUDO_USER,
  LAB_SPARE,
  LAB_USER,
  inNs,
  labDown,
  labNode,
  labUp,
  linkCommand,
  operatorKey,
  powerOff,
  powerOn,
} from "../../scripts/lib/cluster/lab";
import { writeLabCluster } from "../../scripts/lib/cluster/lab-env";
import { clusterDir, loadClusterSettings } from "../../scripts/lib/cluster/settings";
import type { DrillResult } from "../../scripts/lib/cluster/drill";
import type { Gap } from "../../scripts/lib/cluster/load";
import type { ReplaceResult } from "../../scripts/lib/cluster/replace";
import { memberListCommand, parseMemberList } from "../../scripts/lib/cluster/replace-plan";
import type { RollingResult } from "../../scripts/lib/cluster/rolling";
import type { ClusterStatus } from "../../scripts/lib/cluster/status";
import { isRoot, run } from "../../scripts/lib/exec";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = process.execPath;
const OP = "pgplab-op";

async function labPossible(): Promise<string | undefined> {
  if (!isRoot()) return "needs root (ip netns, sshd, useradd)";
  const r = await run(["ip", "netns", "list"], { nothrow: true }).catch(() => undefined);
  if (!r || r.code !== 0) return `\`ip netns\` does not work here: ${r?.stderr.trim() ?? "no ip command"}`;
  return undefined;
}
const skipReason = await labPossible();
if (skipReason) console.log(`cluster-lab.test.ts skipped: ${skipReason}`);

const tool = (script: string, ...args: string[]) =>
  run(inNs(OP, [BUN, script, "--cluster", "lab", ...args]), { cwd: ROOT, nothrow: true, timeoutMs: 400_000 });
async function status(): Promise<ClusterStatus | undefined> {
  const r = await tool("scripts/cluster-status.ts", "--json");
  try {
    return JSON.parse(r.stdout) as ClusterStatus;
  } catch {
    return undefined;
  }
}
const password = () =>
  readFileSync(join(clusterDir("lab"), ".secrets.env"), "utf8")
    .match(/^POSTGRES_PASSWORD=(.*)$/m)![1]!
    .replace(/^["']|["']$/g, "");
const psql = (ns: string, host: string, port: number, sql: string, timeoutS = 5) =>
  run(
    inNs(ns, [
      "timeout",
      String(timeoutS),
      "psql",
      `host=${host} port=${port} user=postgres dbname=postgres connect_timeout=2`,
      "-XAtq",
      "-v",
      "ON_ERROR_STOP=1",
      "-c",
      sql,
    ]),
    { env: { PGPASSWORD: password() }, nothrow: true, timeoutMs: (timeoutS + 5) * 1000 },
  );

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await Bun.sleep(500);
  }
}

/** A write load through the VIP, run inside the operator namespace (tests/integration/cluster-load.ts). */
function startLoad(vip: string, port: number, firstId: number) {
  const dir = mkdtempSync(join(tmpdir(), "pgp-lab-load-"));
  const done = run(inNs(OP, [BUN, "tests/integration/cluster-load.ts", vip, String(port), dir, String(firstId)]), {
    cwd: ROOT,
    env: { PGPASSWORD: password() },
    timeoutMs: 600_000,
    nothrow: true,
  });
  const ackedIds = () =>
    existsSync(join(dir, "acked"))
      ? readFileSync(join(dir, "acked"), "utf8").split("\n").filter(Boolean).map(Number)
      : [];
  return {
    ackedIds,
    started: () => until("the load writes", 20_000, async () => (ackedIds().length > 20 ? true : undefined)),
    stop: async () => {
      writeFileSync(join(dir, "stop"), "");
      const summary = JSON.parse((await done).stdout.trim().split("\n").pop() || "{}") as {
        maxGapMs?: number;
        gaps?: Gap[];
      };
      const acked = ackedIds();
      rmSync(dir, { recursive: true, force: true });
      return { maxGapMs: summary.maxGapMs ?? -1, gaps: summary.gaps ?? [], acked };
    },
  };
}

/** Every acknowledged id must be in the table (read through the VIP). */
async function lostIds(vip: string, port: number, acked: number[]): Promise<number[]> {
  const r = await psql(OP, vip, port, "SELECT id FROM lab_load WHERE id > 0", 20);
  if (r.code !== 0) throw new Error(`reading lab_load: ${r.stderr}`);
  const stored = new Set(r.stdout.split("\n").filter(Boolean).map(Number));
  return acked.filter((id) => !stored.has(id));
}

describe.skipIf(!!skipReason)("cluster on three namespace hosts", () => {
  const figures: Record<string, string> = {};
  beforeAll(async () => {
    writeLabCluster(await labUp());
  }, 120_000);
  afterAll(async () => {
    await labDown();
    rmSync(clusterDir("lab"), { recursive: true, force: true });
    console.log(`cluster lab figures: ${JSON.stringify(figures)}`);
  }, 120_000);

  test("plan, deploy over SSH from the operator namespace, a no-op re-deploy", async () => {
    const plan = await tool("scripts/cluster-plan.ts", "--json");
    expect(plan.code).toBe(0);
    figures.planMs = String(JSON.parse(plan.stdout).totalMs);
    const first = await tool("scripts/cluster-deploy.ts", "--json");
    if (first.code !== 0) throw new Error(`deploy failed:\n${first.stderr}`);
    const r1 = JSON.parse(first.stdout);
    figures.firstDeployMs = String(r1.ms);
    expect(r1.started.sort()).toEqual(
      ["etcd", "haproxy", "patroni", "vip-manager"]
        .flatMap((s) => ["lab1", "lab2", "lab3"].map((m) => `${s}@${m}`))
        .sort(),
    );
    const again = await tool("scripts/cluster-deploy.ts", "--json");
    expect(again.code).toBe(0);
    const r2 = JSON.parse(again.stdout);
    figures.noopDeployMs = String(r2.ms);
    expect({ started: r2.started, restarted: r2.restarted, written: Object.values(r2.changedFiles).flat() }).toEqual({
      started: [],
      restarted: [],
      written: [],
    });
  }, 600_000);

  test("3 members, a sync standby, the VIP on the leader's host; each host's files under its own root", async () => {
    const st = (await status())!;
    expect(st.health).toEqual({ ok: true, problems: [] });
    expect(st.members.map((m) => m.role).sort()).toEqual(["leader", "replica", "sync_standby"]);
    expect(st.vipHolder).toBe(st.leader!);
    const s = loadClusterSettings("lab");
    for (const h of s.hosts)
      expect(readFileSync(`/var/lib/pgplab/${h.address}/root/etc/pgplatform/cluster`, "utf8")).toBe("lab\n");
  }, 60_000);

  test("cluster-switchover under a write load: the sync standby leads with the VIP, 0 acknowledged writes lost", async () => {
    const s = loadClusterSettings("lab");
    const before = (await status())!;
    expect((await psql(OP, s.vip, s.ports.rw, "CREATE TABLE IF NOT EXISTS lab_load (id int PRIMARY KEY)")).code).toBe(
      0,
    );
    const load = startLoad(s.vip, s.ports.rw, 3_000_000);
    try {
      await load.started();
      const r = await tool("scripts/cluster-switchover.ts", "--json");
      if (r.code !== 0) throw new Error(`switchover failed:\n${r.stderr}`);
      expect(JSON.parse(r.stdout)).toMatchObject({ from: before.leader, to: before.syncStandby });
      figures.switchoverSettledMs = String(JSON.parse(r.stdout).ms);
    } finally {
      const { maxGapMs, acked } = await load.stop();
      figures.switchoverWriteGapMs = String(maxGapMs);
      expect(acked.length).toBeGreaterThan(50);
      expect(await lostIds(s.vip, s.ports.rw, acked)).toEqual([]);
    }
  }, 300_000);

  test("cluster-rolling-restart under a write load: every member restarted, replicas first, one switchover to the sync standby; 0 acknowledged writes lost", async () => {
    const s = loadClusterSettings("lab");
    const before = await until("a healthy cluster", 120_000, async () => {
      const st = await status();
      return st?.health.ok ? st : undefined;
    });
    const pidsBefore = Object.fromEntries(before.hosts.map((h) => [h.name, h.pids.patroni]));
    expect((await psql(OP, s.vip, s.ports.rw, "CREATE TABLE IF NOT EXISTS lab_load (id int PRIMARY KEY)")).code).toBe(
      0,
    );
    const load = startLoad(s.vip, s.ports.rw, 4_000_000);
    let steps: RollingResult["steps"] = [];
    try {
      await load.started();
      const r = await tool("scripts/cluster-rolling-restart.ts", "--json");
      if (r.code !== 0) throw new Error(`rolling restart failed:\n${r.stderr}`);
      const res = JSON.parse(r.stdout) as RollingResult;
      steps = res.steps;
      const plain = s.hosts.map((h) => h.name).find((n) => n !== before.leader && n !== before.syncStandby)!;
      expect(res.steps.map((x) => x.step.replace(/ -> .*/, ""))).toEqual([
        `restart ${plain}`,
        `restart ${before.syncStandby}`,
        `switchover ${before.leader}`,
        `restart ${before.leader}`,
      ]);
      figures.rollingRestartMs = String(res.ms);
      figures.rollingSteps = res.steps.map((x) => `${x.step}:${x.ms}`).join(",");
      const after = (await status())!;
      expect(after.health).toEqual({ ok: true, problems: [] });
      expect(after.leader).toBe(res.leader);
      expect(after.vipHolder).toBe(res.leader);
      expect(res.leader).not.toBe(before.leader);
      // every host's Patroni is a new process
      for (const h of after.hosts) expect(h.pids.patroni).not.toBe(pidsBefore[h.name]);
    } finally {
      const { maxGapMs, gaps, acked } = await load.stop();
      figures.rollingWriteGapMs = String(maxGapMs);
      // The gaps that ended while each step ran: the switchover's is the one clients notice.
      figures.rollingGapsPerStep = steps
        .map(
          (x) =>
            `${x.step}:${Math.max(0, ...gaps.filter((g) => g.endedAt >= x.at && g.endedAt <= x.at + x.ms + 2000).map((g) => g.ms))}`,
        )
        .join(",");
      figures.rollingAcked = String(acked.length);
      expect(acked.length).toBeGreaterThan(50);
      expect(await lostIds(s.vip, s.ports.rw, acked)).toEqual([]);
    }
  }, 600_000);

  test("partition-leader: the old primary refuses writes within ttl + loop_wait, never two hosts accept a write in one probe round, a new leader takes the VIP, 0 acknowledged writes lost, the old leader rejoins", async () => {
    const s = loadClusterSettings("lab");
    const before = (await status())!;
    const old = s.hosts.find((h) => h.name === before.leader)!;
    const oldNs = labNode(old.address);
    expect((await psql(OP, s.vip, s.ports.rw, "CREATE TABLE IF NOT EXISTS lab_load (id int PRIMARY KEY)")).code).toBe(
      0,
    );
    expect((await psql(OP, s.vip, s.ports.rw, "CREATE TABLE IF NOT EXISTS lab_probe (round int)")).code).toBe(0);
    const load = startLoad(s.vip, s.ports.rw, 1);
    try {
      await load.started();
      await run(linkCommand(oldNs, false));
      const cut = Date.now();
      // Probe every host's Postgres directly, each from inside its own namespace, with a write:
      // when does the isolated old primary accept its last one, and do two hosts ever accept in one round?
      let lastAccepted = -1;
      const rounds: string[][] = [];
      const probing = (async () => {
        for (let n = 1; Date.now() - cut < 20_000; n++) {
          const res = await Promise.all(
            s.hosts.map((h) =>
              psql(labNode(h.address).ns, h.address, s.ports.pg, `INSERT INTO lab_probe (round) VALUES (${n})`, 2),
            ),
          );
          const accepted = s.hosts.filter((_, i) => res[i]!.code === 0).map((h) => h.name);
          rounds.push(accepted);
          if (accepted.includes(old.name)) lastAccepted = Date.now() - cut;
          await Bun.sleep(300);
        }
      })();
      const after = await until("a new leader holding the VIP", 60_000, async () => {
        const st = await status();
        return st?.leader && st.leader !== old.name && st.vipHolder === st.leader ? st : undefined;
      });
      figures.newLeaderWithVipMs = String(Date.now() - cut);
      await probing;
      figures.oldPrimaryLastAcceptedMs = String(lastAccepted);
      expect(lastAccepted).toBeLessThan((s.timing.ttl + s.timing.loopWait) * 1000);
      expect(rounds.slice(-5).map((r) => r.includes(old.name))).toEqual([false, false, false, false, false]);
      expect(rounds.filter((r) => r.length > 1)).toEqual([]);
      figures.probeRounds = String(rounds.length);
      await Bun.sleep(3000); // writes resume through the moved VIP
      await run(linkCommand(oldNs, true));
      const healed = Date.now();
      const rejoined = await until("the old leader back as a replica on the new timeline", 120_000, async () => {
        const st = await status();
        const m = st?.members.find((x) => x.name === old.name);
        return st?.health.ok &&
          m &&
          m.role !== "leader" &&
          (m.timeline ?? 0) > (before.members.find((x) => x.name === old.name)?.timeline ?? 0)
          ? st
          : undefined;
      });
      figures.rejoinAfterHealMs = String(Date.now() - healed);
      expect(rejoined.leader).toBe(after.leader!);
    } finally {
      const { maxGapMs, acked } = await load.stop();
      figures.partitionWriteGapMs = String(maxGapMs);
      figures.partitionAcked = String(acked.length);
      expect(acked.length).toBeGreaterThan(50);
      expect(await lostIds(s.vip, s.ports.rw, acked)).toEqual([]);
    }
  }, 600_000);

  test("kill-host: every process of the leader's host killed at once (power off); a new leader takes the VIP, 0 acknowledged writes lost; a re-deploy brings the host back as a replica", async () => {
    const s = loadClusterSettings("lab");
    const before = (await status())!;
    expect(before.health.ok).toBe(true);
    const old = s.hosts.find((h) => h.name === before.leader)!;
    const load = startLoad(s.vip, s.ports.rw, 1_000_000);
    try {
      await load.started();
      const killed = await powerOff(labNode(old.address));
      expect(killed.length).toBeGreaterThan(5); // sshd, etcd, patroni, postgres and its workers, haproxy, vip-manager
      const cut = Date.now();
      const after = await until("a new leader holding the VIP", 90_000, async () => {
        const st = await status();
        return st?.leader && st.leader !== old.name && st.vipHolder === st.leader ? st : undefined;
      });
      figures.killHostNewLeaderWithVipMs = String(Date.now() - cut);
      await Bun.sleep(3000);
      await powerOn(labNode(old.address));
      const redeploy = await tool("scripts/cluster-deploy.ts", "--json");
      if (redeploy.code !== 0) throw new Error(`re-deploy after the host came back failed:\n${redeploy.stderr}`);
      const r = JSON.parse(redeploy.stdout);
      expect(r.started.sort()).toEqual(["etcd", "haproxy", "patroni", "vip-manager"].map((x) => `${x}@${old.name}`));
      expect(r.status.leader).toBe(after.leader);
    } finally {
      const { maxGapMs, acked } = await load.stop();
      figures.killHostWriteGapMs = String(maxGapMs);
      figures.killHostAcked = String(acked.length);
      expect(acked.length).toBeGreaterThan(50);
      expect(await lostIds(s.vip, s.ports.rw, acked)).toEqual([]);
    }
  }, 600_000);
  test("make cluster-drill SCENARIO=partition-etcd-minority: the sync standby's host cut off; no failover, never two writable hosts, 0 acknowledged writes lost; healed back to 3 members", async () => {
    await until("a healthy cluster", 120_000, async () => ((await status())?.health.ok ? true : undefined));
    const r = await tool("scripts/cluster-drill.ts", "--scenario", "partition-etcd-minority", "--json");
    const d = JSON.parse(r.stdout.trim().split("\n").pop() || "{}") as DrillResult;
    if (r.code !== 0) throw new Error(`drill failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
    figures.minorityWriteGapMs = String(d.writeGapMs);
    figures.minorityAcked = String(d.acked);
    figures.minorityRejoinMs = String(d.rejoinMs);
    expect(d.leaderAfter).toBe(d.leaderBefore);
    expect(d.victim).not.toBe(d.leaderBefore);
    expect(d.lost).toEqual([]);
    expect(d.twoWritable).toEqual([]);
    expect(d.probeRounds).toBeGreaterThan(10);
    expect(d.acked).toBeGreaterThan(50);
    expect(d.rejoinMs).toBeLessThan(60_000);
    expect((await status())?.health).toEqual({ ok: true, problems: [] });
  }, 600_000);

  test("make cluster-replace under a write load: a replica's host swapped for the spare; 0 acknowledged writes lost, never two writable hosts, 3 members with a sync standby, the old etcd member gone, the new host streaming; a re-run changes nothing", async () => {
    const s = loadClusterSettings("lab");
    const before = await until("a healthy cluster", 120_000, async () => {
      const st = await status();
      return st?.health.ok ? st : undefined;
    });
    const old = s.hosts.find((h) => h.name !== before.leader && h.name !== before.syncStandby)!;
    const fresh = `${LAB_USER}@${LAB_SPARE.address}`;
    expect((await psql(OP, s.vip, s.ports.rw, "CREATE TABLE IF NOT EXISTS lab_load (id int PRIMARY KEY)")).code).toBe(
      0,
    );
    // Bad NEW hosts: a clear error, and nothing changed (cluster.env as it was, the cluster healthy as it was).
    const envBefore = readFileSync(join(clusterDir("lab"), "cluster.env"), "utf8");
    const gone = await tool("scripts/cluster-replace.ts", "--old", old.name, "--new", `${LAB_USER}@10.231.0.15`);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(
      `error [SSH_FAILED]: host ${old.index} (${LAB_USER}@10.231.0.15): ssh to ${LAB_USER}@10.231.0.15:22 failed`,
    );
    const leaderSsh = s.hosts.find((h) => h.name === before.leader)!.ssh;
    const dup = await tool("scripts/cluster-replace.ts", "--old", old.name, "--new", leaderSsh);
    expect(dup.stderr).toContain(
      `error [DUPLICATE_HOST]: NEW=${leaderSsh} is already member ${before.leader} of cluster lab: two members on one machine are not HA`,
    );
    expect(readFileSync(join(clusterDir("lab"), "cluster.env"), "utf8")).toBe(envBefore);
    expect((await status())?.health.ok).toBe(true);
    const load = startLoad(s.vip, s.ports.rw, 5_000_000);
    // Every host's Postgres asked directly, from inside its own namespace, the spare included: who accepts writes?
    const twoWritable: string[][] = [];
    let probing = true;
    const probe = (async () => {
      for (let rounds = 0; probing || rounds < 1; rounds++) {
        const hosts = [...s.hosts.map((h) => h.address), LAB_SPARE.address];
        const res = await Promise.all(
          hosts.map((a) => psql(labNode(a).ns, a, s.ports.pg, "SELECT pg_is_in_recovery()", 2)),
        );
        const writable = hosts.filter((_, i) => res[i]!.code === 0 && res[i]!.stdout.trim() === "f");
        if (writable.length > 1) twoWritable.push(writable);
        await Bun.sleep(300);
      }
    })();
    try {
      await load.started();
      const r = await tool("scripts/cluster-replace.ts", "--old", old.name, "--new", fresh, "--json");
      if (r.code !== 0) throw new Error(`replace failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
      const res = JSON.parse(r.stdout) as ReplaceResult;
      figures.replaceMs = String(res.ms);
      figures.replaceSlowSteps = res.steps
        .filter((x) => x.ms >= 1000)
        .map((x) => `${x.step}:${x.ms}`)
        .join(",");
      expect(res.alreadyDone).toBe(false);
      expect(res.old).toEqual({ name: old.name, address: old.address, reachable: true });
      expect(res.new).toEqual({ name: old.name, address: LAB_SPARE.address });
      // cluster.env: the spare in the old host's place, every other line as it was
      const after = loadClusterSettings("lab");
      expect(after.hosts.map((h) => h.ssh)).toEqual(s.hosts.map((h) => (h === old ? fresh : h.ssh)));
      const st = (await status())!;
      expect(st.health).toEqual({ ok: true, problems: [] });
      expect(st.members.map((m) => m.role).sort()).toEqual(["leader", "replica", "sync_standby"]);
      expect(st.members.find((m) => m.name === old.name)!.host).toBe(LAB_SPARE.address);
      // etcd's own member list, read with etcdctl on a surviving host: exactly the three hosts, the old one gone
      const h1 = after.hosts.find((h) => h !== after.hosts[old.index - 1])!;
      const list = await run(inNs(labNode(h1.address).ns, memberListCommand(after, h1).slice(2)), { nothrow: true });
      expect(list.code).toBe(0);
      expect(
        parseMemberList(list.stdout)
          .map((m) => `${m.name} ${m.peerUrls.join(",")} ${m.learner}`)
          .sort(),
      ).toEqual(after.hosts.map((h) => `${h.name} https://${h.address}:${s.ports.etcdPeer} false`).sort());
      // the leader streams to the new host
      const leader = after.hosts.find((h) => h.name === st.leader)!;
      const repl = await psql(
        labNode(leader.address).ns,
        leader.address,
        s.ports.pg,
        "SELECT host(client_addr) || ' ' || state FROM pg_stat_replication ORDER BY 1",
      );
      expect(repl.stdout.trim().split("\n")).toContain(`${LAB_SPARE.address} streaming`);
      expect(repl.stdout).not.toContain(old.address);
      // the old host has left: its services stopped, its cluster mark gone
      expect(existsSync(`${old.root}/etc/pgplatform/cluster`)).toBe(false);
      const again = await tool("scripts/cluster-replace.ts", "--old", old.name, "--new", fresh, "--json");
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ alreadyDone: true, steps: [] });
      figures.replaceRerunMs = String(JSON.parse(again.stdout).ms);
    } finally {
      probing = false;
      await probe;
      const { maxGapMs, acked } = await load.stop();
      figures.replaceWriteGapMs = String(maxGapMs);
      figures.replaceAcked = String(acked.length);
      expect(twoWritable).toEqual([]);
      expect(acked.length).toBeGreaterThan(50);
      expect(await lostIds(s.vip, s.ports.rw, acked)).toEqual([]);
    }
  }, 600_000);

  test("cluster-plan refuses, before anything changes: hosts of another cluster, the VIP in use, a host without sudo, an unreachable host", async () => {
    const s = loadClusterSettings("lab");
    const dir = clusterDir("labx");
    mkdirSync(dir, { recursive: true });
    const env = (hosts: string[]) =>
      writeFileSync(
        join(dir, "cluster.env"),
        `CLUSTER_NAME=labx\nHOSTS=${hosts.join(",")}\nVIP=${s.vip}\nHOST_ROOT=${LAB_HOST_ROOT_PATTERN}\nSSH_IDENTITY=${operatorKey}\nSSH_KNOWN_HOSTS=${join(clusterDir("lab"), "known_hosts")}\n`,
      );
    try {
      env(s.hosts.map((h) => h.ssh));
      const taken = await run(inNs(OP, [BUN, "scripts/cluster-plan.ts", "--cluster", "labx"]), {
        cwd: ROOT,
        nothrow: true,
        timeoutMs: 60_000,
      });
      expect(taken.code).toBe(1);
      const lines = taken.stderr.split("\n");
      expect(lines).toContain(
        `error [HOST_IN_OTHER_CLUSTER]: cluster-plan for labx: ${s.hosts[0]!.ssh} already belongs to cluster lab (its /etc/pgplatform/cluster says so); nothing was changed`,
      );
      expect(taken.stderr).toMatch(
        /\| VIP_IN_USE: VIP 10\.231\.0\.50 is already configured on pgp-lab-ops@10\.231\.0\.1\d, which is not a member of labx/,
      );
      // a login without sudo on a real host (the lab's second user has the key, no sudoers line)
      env([`${LAB_NOSUDO_USER}@${s.hosts[0]!.address}`, s.hosts[1]!.ssh, s.hosts[2]!.ssh]);
      const nosudo = await run(inNs(OP, [BUN, "scripts/cluster-plan.ts", "--cluster", "labx"]), {
        cwd: ROOT,
        nothrow: true,
        timeoutMs: 60_000,
      });
      expect(nosudo.code).toBe(1);
      expect(nosudo.stderr.split("\n")).toContain(
        `error [NO_SUDO]: cluster-plan for labx: ${LAB_NOSUDO_USER}@${s.hosts[0]!.address}: sudo asks for a password (or is not allowed); nothing was changed`,
      );
      env([s.hosts[0]!.ssh, s.hosts[1]!.ssh, `${LAB_USER}@10.231.0.15`]);
      const gone = await run(inNs(OP, [BUN, "scripts/cluster-plan.ts", "--cluster", "labx"]), {
        cwd: ROOT,
        nothrow: true,
        timeoutMs: 60_000,
      });
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain(
        `error [SSH_FAILED]: host 3 (${LAB_USER}@10.231.0.15): ssh to ${LAB_USER}@10.231.0.15:22 failed`,
      );
      // nothing changed on the hosts: each still marked for lab, the cluster healthy
      for (const h of s.hosts) expect(readFileSync(`${h.root}/etc/pgplatform/cluster`, "utf8")).toBe("lab\n");
      expect((await status())?.health).toEqual({ ok: true, problems: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
