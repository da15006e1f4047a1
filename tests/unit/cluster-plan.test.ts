import { describe, expect, test } from "bun:test";
import { crm } from "../golden-cluster";
import { changedFiles } from "../../scripts/lib/cluster/deploy";
import {
  neighbourMac,
  planError,
  planProblems,
  sameMachine,
  vipNeighbourCommand,
  type HostFacts,
} from "../../scripts/lib/cluster/plan";
import { clusterWords } from "../../scripts/lib/cluster/remote";
import { pickCandidate, switchoverCommand } from "../../scripts/lib/cluster/switchover";
import { clusterProblems, type HostState, type MemberState } from "../../scripts/lib/cluster/status";
import { ToolkitError } from "../../scripts/lib/errors";

const s = crm();
const good = (i: number, over: Partial<HostFacts> = {}): HostFacts => ({
  host: `ops@10.0.0.${i}`,
  arch: "x86_64",
  sudo: true,
  missingPackages: [],
  holdsVip: false,
  interfaceOk: true,
  busyPorts: [],
  ...over,
});
const facts = (over: Record<number, Partial<HostFacts>> = {}) => [1, 2, 3].map((i) => good(i, over[i]));
const codes = (f: HostFacts[], opts = {}) => planProblems(s, f, opts).map((p) => p.code);

describe("cluster-plan: each bad input is a clear error before anything changes", () => {
  test("three good hosts: no problem", () => expect(planProblems(s, facts())).toEqual([]));

  test("a host without passwordless sudo", () => {
    const [p] = planProblems(s, facts({ 2: { sudo: false } }));
    expect(p).toEqual({
      code: "NO_SUDO",
      host: "ops@10.0.0.2",
      message: "ops@10.0.0.2: sudo asks for a password (or is not allowed)",
      fix: "give the ssh user passwordless sudo on that host (e.g. a line '<user> ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/), or use another user in HOSTS of clusters/crm/cluster.env",
    });
  });

  test("mismatched architectures", () => {
    expect(planProblems(s, facts({ 3: { arch: "aarch64" } }))[0]!.message).toBe(
      "the hosts differ in architecture: ops@10.0.0.1 x86_64, ops@10.0.0.2 x86_64, ops@10.0.0.3 aarch64",
    );
  });

  test("a host already in another cluster; its own cluster is fine", () => {
    expect(planProblems(s, facts({ 1: { memberOf: "billing" } }))[0]!.message).toBe(
      "ops@10.0.0.1 already belongs to cluster billing (its /etc/pgplatform/cluster says so)",
    );
    expect(codes(facts({ 1: { memberOf: "crm" } }))).toEqual([]);
  });

  test("the VIP configured on a foreign host, or answering on the network, is in use; held by our own leader it is not", () => {
    expect(codes(facts({ 2: { holdsVip: true } }))).toEqual(["VIP_IN_USE"]);
    expect(planProblems(s, facts(), { vipAnsweredBy: "0a:82:c2:d3:45:3e" })[0]!.message).toBe(
      "VIP 10.0.0.50 already answers on the network (MAC 0a:82:c2:d3:45:3e): another machine uses it",
    );
    expect(
      codes(facts({ 2: { holdsVip: true, memberOf: "crm" }, 1: { memberOf: "crm" }, 3: { memberOf: "crm" } }), {
        vipAnsweredBy: "0a:82:c2:d3:45:3e",
      }),
    ).toEqual([]);
  });

  test("two addresses of one machine (same pinned host key) are a duplicate host", () => {
    const kh = "10.0.0.1 ssh-ed25519 AAAAkeyA\n10.0.0.2 ssh-ed25519 AAAAkeyB\n10.0.0.3 ssh-ed25519 AAAAkeyA\n";
    expect(sameMachine(kh, s.hosts)).toEqual([1, 3]);
    expect(planProblems(s, facts(), { knownHosts: kh })[0]!.message).toBe(
      "hosts 1 and 3 (10.0.0.1, 10.0.0.3) are one machine (the same ssh host key)",
    );
    expect(
      sameMachine(kh.replace("10.0.0.3 ssh-ed25519 AAAAkeyA", "10.0.0.3 ssh-ed25519 AAAAkeyC"), s.hosts),
    ).toBeUndefined();
  });

  test("wrong interface and busy ports", () => {
    expect(codes(facts({ 1: { interfaceOk: false }, 3: { busyPorts: ["10.0.0.3:5432"] } }))).toEqual([
      "BAD_INTERFACE",
      "PORT_IN_USE",
    ]);
  });

  test("all problems in one error: the first's code and fix, the rest listed", () => {
    const e = planError({
      cluster: "crm",
      hosts: [],
      problems: planProblems(s, facts({ 2: { sudo: false }, 3: { arch: "aarch64" } })),
      ms: 1,
    })!;
    expect(e.code).toBe("NO_SUDO");
    expect(e.message).toBe(
      "cluster-plan for crm: ops@10.0.0.2: sudo asks for a password (or is not allowed); nothing was changed",
    );
    expect(e.detail).toBe(
      "ARCH_MISMATCH: the hosts differ in architecture: ops@10.0.0.1 x86_64, ops@10.0.0.2 x86_64, ops@10.0.0.3 aarch64 (fix: use three hosts of one architecture (Postgres replicas must match their primary's binary format))",
    );
  });

  test("the VIP probe needs no package; its answer is parsed", () => {
    expect(vipNeighbourCommand("10.0.0.50")).toEqual([
      "bash",
      "-c",
      'timeout 2 bash -c "exec 3<>/dev/tcp/$1/9" _ "$1" 2>/dev/null; ip -4 neigh show "$1"',
      "_",
      "10.0.0.50",
    ]);
    expect(neighbourMac("10.0.0.50 dev eth0 lladdr 0a:82:c2:d3:45:3e REACHABLE\n")).toBe("0a:82:c2:d3:45:3e");
    expect(neighbourMac("10.0.0.50 dev eth0 FAILED\n")).toBeUndefined();
  });

  test("ssh errors speak of the cluster's file and keys", () => {
    const e = clusterWords(
      new ToolkitError(
        "SSH_FAILED",
        "ssh to ops@10.0.0.9:22 failed: Connection refused",
        "nothing accepts ssh at ops@10.0.0.9:22: start sshd on the server, or fix HOST/SSH_PORT in clients/crm/client.env",
      ),
      s,
    );
    expect(e.fix).toBe(
      "nothing accepts ssh at ops@10.0.0.9:22: start sshd on the server, or fix HOSTS/SSH_PORT in clusters/crm/cluster.env",
    );
  });
});

describe("cluster-deploy: only changed files are written", () => {
  test("checksums from sha256sum decide", () => {
    const files = [
      { path: "/etc/a", content: "x\n" },
      { path: "/etc/b", content: "y\n" },
      { path: "/etc/c", content: "z\n" },
    ];
    // /etc/a differs, /etc/b is current (sha256 of "y\n"), /etc/c is missing
    const out =
      "7510f4958da61bc1fa4a9ef1f8d7f0a3c5c1b7a6da4e7bfbb4e0d07a9b6f2f30  /etc/a\n3bb2abb69ebb27fbfe63c7639624c6ec5e331b841a5bc8c3ebc10b9285e90877  /etc/b\n";
    expect(changedFiles(files, out)).toEqual(["/etc/a", "/etc/c"]);
  });
});

describe("cluster-status: health rules", () => {
  const m = (name: string, role: string, state = "running"): MemberState => ({ name, host: "", role, state });
  const h = (name: string, vip = false): HostState => ({
    name,
    address: "",
    reachable: true,
    holdsVip: vip,
    pids: {},
    etcdHealthy: true,
  });
  test("healthy: leader, sync standby, 3 running, VIP on the leader's host", () => {
    expect(
      clusterProblems(
        s,
        [m("crm1", "leader"), m("crm2", "sync_standby", "streaming"), m("crm3", "replica", "streaming")],
        [h("crm1", true), h("crm2"), h("crm3")],
      ),
    ).toEqual([]);
  });
  test("VIP elsewhere, twice, no sync standby", () => {
    expect(
      clusterProblems(
        s,
        [m("crm1", "leader"), m("crm2", "replica"), m("crm3", "replica")],
        [h("crm1"), h("crm2", true), h("crm3", true)],
      ),
    ).toEqual([
      "no sync standby",
      "VIP 10.0.0.50 on 2 hosts: crm2, crm3",
      "VIP 10.0.0.50 not on the leader's host (crm1)",
    ]);
  });
});

describe("cluster-switchover", () => {
  const st = {
    leader: "crm1",
    syncStandby: "crm2",
    members: [
      { name: "crm1", host: "", role: "leader", state: "running" },
      { name: "crm2", host: "", role: "sync_standby", state: "streaming" },
      { name: "crm3", host: "", role: "replica", state: "stopped" },
    ],
  };
  test("patronictl on the leader's host as postgres, leader and candidate named, no prompt", () => {
    expect(switchoverCommand(s, s.hosts[0]!, "crm2").join(" ")).toBe(
      "sudo -n -u postgres patronictl -c /etc/pgplatform/crm/patroni.yml switchover crm --leader crm1 --candidate crm2 --force",
    );
  });
  test("the candidate: the sync standby by default, TO when it is a running replica", () => {
    expect(pickCandidate(s, st)).toBe("crm2");
    expect(pickCandidate(s, st, "crm2")).toBe("crm2");
    expect(() => pickCandidate(s, st, "crm9")).toThrow("TO=crm9: cluster crm has no member crm9");
    expect(() => pickCandidate(s, st, "crm1")).toThrow("crm1 already leads cluster crm");
    expect(() => pickCandidate(s, st, "crm3")).toThrow("crm3 is not a running replica (stopped)");
    const running3 = { ...st, members: st.members.map((m) => (m.name === "crm3" ? { ...m, state: "streaming" } : m)) };
    expect(() => pickCandidate(s, running3, "crm3")).toThrow(
      "crm3 is not the sync standby (crm2): in synchronous mode Patroni hands over only to the sync standby, which holds every acknowledged commit",
    );
    expect(() => pickCandidate(s, { ...st, syncStandby: undefined })).toThrow(
      "cluster crm has no sync standby to hand over to",
    );
  });
});
