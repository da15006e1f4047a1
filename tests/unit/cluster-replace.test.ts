import { describe, expect, test } from "bun:test";
import * as rp from "../../scripts/lib/cluster/replace-plan";
import type { EtcdMember } from "../../scripts/lib/cluster/replace-plan";
import { renderEtcd } from "../../scripts/lib/cluster/render";
import type { ToolkitError } from "../../scripts/lib/errors";
import { CRM_ENV, crm } from "../golden-cluster";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const s = crm();
const ENV = `# my cluster\n${CRM_ENV}TIMING=wan\n`;
const member = (id: string, name: string, addr: string, learner = false): EtcdMember => ({
  id,
  name,
  peerUrls: [`https://${addr}:2380`],
  clientUrls: name ? [`https://${addr}:2379`] : [],
  learner,
});
const three = [member("a1", "crm1", "10.0.0.1"), member("b2", "crm2", "10.0.0.2"), member("c3", "crm3", "10.0.0.3")];
const err = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as ToolkitError;
  }
  throw new Error("no error");
};

describe("cluster-replace: which member goes, which host comes", () => {
  test("NEW takes OLD's place in HOSTS (and its member name); every other line of cluster.env stays", () => {
    const t = rp.resolveReplace(s, ENV, "crm3", "ops@10.0.0.4");
    expect(t.done).toBe(false);
    expect(t.old!.address).toBe("10.0.0.3");
    expect(t.added).toMatchObject({ index: 3, name: "crm3", address: "10.0.0.4", ssh: "ops@10.0.0.4" });
    expect(t.envText).toBe(
      "# my cluster\nCLUSTER_NAME=crm\nHOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.4\nVIP=10.0.0.50\nVIP_INTERFACE=ens10\nTIMING=wan\n",
    );
    expect(t.next.timing.name).toBe("wan");
    // OLD by address or user@address too
    expect(rp.resolveReplace(s, ENV, "10.0.0.2", "ops@10.0.0.4").envText).toContain(
      "HOSTS=ops@10.0.0.1,ops@10.0.0.4,ops@10.0.0.3\n",
    );
    expect(rp.resolveReplace(s, ENV, "ops@10.0.0.1", "root@10.0.0.9").added.ssh).toBe("root@10.0.0.9");
  });

  test("a replace that already happened is recognised (OLD gone, or OLD's name now NEW's)", () => {
    const after = crm().hosts.map((h) => h.ssh);
    after[2] = "ops@10.0.0.4";
    const s2 = rp.resolveReplace(s, ENV, "crm3", "ops@10.0.0.4").next;
    expect(after).toEqual(s2.hosts.map((h) => h.ssh));
    const env2 = rp.withHosts(ENV, after, "x");
    for (const old of ["crm3", "10.0.0.3", "ops@10.0.0.3"]) {
      const t = rp.resolveReplace(s2, env2, old, "ops@10.0.0.4");
      expect({ done: t.done, old: t.old, added: t.added.name, env: t.envText }).toEqual({
        done: true,
        old: undefined,
        added: "crm3",
        env: env2,
      });
    }
  });

  test("bad input: clear errors before anything changes", () => {
    expect(err(() => rp.resolveReplace(s, ENV, "crm3", "10.0.0.4")).message).toBe(
      'NEW="10.0.0.4": must be user@address of the new host',
    );
    expect(err(() => rp.resolveReplace(s, ENV, "", "ops@10.0.0.4")).code).toBe("NO_OLD_HOST");
    const dup = err(() => rp.resolveReplace(s, ENV, "crm3", "ops@10.0.0.2"));
    expect([dup.code, dup.message]).toEqual([
      "DUPLICATE_HOST",
      "NEW=ops@10.0.0.2 is already member crm2 of cluster crm: two members on one machine are not HA",
    ]);
    const none = err(() => rp.resolveReplace(s, ENV, "crm7", "ops@10.0.0.4"));
    expect([none.code, none.message, none.fix]).toEqual([
      "NO_MEMBER",
      "OLD=crm7: cluster crm has no such member (and ops@10.0.0.4 is not one either)",
      "one of: crm1 (ops@10.0.0.1), crm2 (ops@10.0.0.2), crm3 (ops@10.0.0.3) (clusters/crm/cluster.env)",
    ]);
    // NEW outside the VIP's network: the settings engine's rule, naming file and key
    expect(err(() => rp.resolveReplace(s, ENV, "crm3", "ops@192.168.1.4")).message).toContain(
      "clusters/crm/cluster.env: VIP: 10.0.0.50 is not in the network of host 192.168.1.4 (/24)",
    );
    expect(err(() => rp.withHosts("VIP=1.2.3.4\n", ["a@1.1.1.1"], "clusters/crm/cluster.env")).code).toBe(
      "NO_HOSTS_LINE",
    );
  });
});

describe("cluster-replace: the preflight is the plan's, on the hosts after the replace", () => {
  test("the VIP answering ARP is the cluster's own while a member (OLD, the leader) holds it; on a host of NEW's set it is a problem", () => {
    const arp = { code: "VIP_IN_USE", message: "VIP 10.0.0.50 already answers on the network (MAC m)", fix: "f" };
    const onNew = { ...arp, host: "ops@10.0.0.4", message: "VIP 10.0.0.50 is already configured on ops@10.0.0.4" };
    const sudo = { code: "NO_SUDO", host: "ops@10.0.0.4", message: "m", fix: "f" };
    expect(rp.replaceProblems([arp, onNew, sudo], true)).toEqual([onNew, sudo]);
    expect(rp.replaceProblems([arp, sudo], false)).toEqual([arp, sudo]);
  });
});

describe("cluster-replace: etcd's runtime reconfiguration, as data", () => {
  const t = rp.resolveReplace(s, ENV, "crm3", "ops@10.0.0.4");
  const h1 = t.next.hosts[0]!;

  test("etcdctl on a surviving host with its TLS client pair", () => {
    const tls =
      "--cacert=/etc/pgplatform/crm/tls/ca.crt --cert=/etc/pgplatform/crm/tls/client.crt --key=/etc/pgplatform/crm/tls/client.key";
    const base = `sudo -n env ETCDCTL_API=3 etcdctl --endpoints=https://10.0.0.1:2379 ${tls} --command-timeout=10s`;
    expect(rp.memberListCommand(t.next, h1).join(" ")).toBe(`${base} member list -w json`);
    expect(rp.memberRemoveCommand(t.next, h1, "c3").join(" ")).toBe(`${base} member remove c3`);
    expect(rp.memberAddCommand(t.next, h1, t.added).join(" ")).toBe(
      `${base} member add crm3 --peer-urls=https://10.0.0.4:2380`,
    );
  });

  test("member list -w json: uint64 ids kept exact, as hex", () => {
    const json =
      '{"header":{"cluster_id":17237436991929493444,"member_id":9372538179322589801,"raft_term":2},"members":[{"ID":9372538179322589801,"name":"crm1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},{"ID":18249187646912138824,"peerURLs":["https://10.0.0.4:2380"],"isLearner":true}]}';
    expect(rp.parseMemberList(json)).toEqual([
      member("8211f1d0f64f3269", "crm1", "10.0.0.1"),
      { id: "fd422379fda50e48", name: "", peerUrls: ["https://10.0.0.4:2380"], clientUrls: [], learner: true },
    ]);
  });

  test("the old member removed, the new one added; nothing once they match", () => {
    expect(rp.etcdChanges(t.next, three)).toEqual({ remove: [three[2]!], add: [t.added] });
    const now = [three[0]!, three[1]!, member("d4", "crm3", "10.0.0.4")];
    expect(rp.etcdChanges(t.next, now)).toEqual({ remove: [], add: [] });
  });

  test("data left from an earlier membership is moved aside, never deleted: etcd gets an empty dir, Patroni clones anew", () => {
    expect(rp.staleDataCommands(t.next, t.added, "20261130T224500Z")).toEqual({
      etcd: {
        test: ["sudo", "-n", "test", "-e", "/var/lib/pgplatform/crm/etcd/member"],
        moveAside: [
          [
            "sudo",
            "-n",
            "mv",
            "-T",
            "/var/lib/pgplatform/crm/etcd",
            "/var/lib/pgplatform/crm/etcd.before-20261130T224500Z",
          ],
          ["sudo", "-n", "install", "-d", "-m", "0700", "-o", "etcd", "-g", "etcd", "/var/lib/pgplatform/crm/etcd"],
        ],
      },
      patroni: {
        test: ["sudo", "-n", "test", "-e", "/var/lib/pgplatform/crm/pg/data/PG_VERSION"],
        moveAside: [
          [
            "sudo",
            "-n",
            "mv",
            "-T",
            "/var/lib/pgplatform/crm/pg/data",
            "/var/lib/pgplatform/crm/pg/data.before-20261130T224500Z",
          ],
        ],
      },
    });
  });

  test("the new member joins with initial-cluster-state existing and the new member list", () => {
    const yml = renderEtcd(ROOT, t.next, t.added);
    expect(yml).toContain(
      "initial-cluster: crm1=https://10.0.0.1:2380,crm2=https://10.0.0.2:2380,crm3=https://10.0.0.4:2380\n",
    );
    const joining = rp.joiningEtcdYml(yml);
    expect(joining).toContain("\ninitial-cluster-state: existing\n");
    expect(joining.replace("existing", "new")).toBe(yml);
    expect(() => rp.joiningEtcdYml("name: x\n")).toThrow("no longer has the line `initial-cluster-state: new`");
  });
});

describe("cluster-replace: the order of every step", () => {
  const t = rp.resolveReplace(s, ENV, "crm3", "ops@10.0.0.4");
  const line = (x: object) => Object.values(x).join(" ");
  const replicaOut = { oldIsLeader: false, leader: "crm1", oldReachable: true, members: three, nextEnvHosts: "h" };

  test("OLD a replica: stop it, etcd remove before add, settings, survivors reloaded, NEW joins and clones, proxies restarted with the leader's host last", () => {
    const steps = rp.replaceSteps(t, { ...replicaOut, nextEnvHosts: "ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.4" });
    expect(steps.map(line)).toEqual([
      "stop crm3@10.0.0.3 vip-manager",
      "stop crm3@10.0.0.3 haproxy",
      "stop crm3@10.0.0.3 patroni",
      "stop crm3@10.0.0.3 etcd",
      "unmark crm3@10.0.0.3",
      "etcd-remove crm3 c3",
      "etcd-add crm3 https://10.0.0.4:2380",
      "write-settings ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.4",
      "files crm1@10.0.0.1",
      "files crm2@10.0.0.2",
      "files crm3@10.0.0.4",
      "reload-patroni crm1@10.0.0.1",
      "reload-patroni crm2@10.0.0.2",
      "etcd-join crm3@10.0.0.4",
      "start crm3@10.0.0.4 patroni",
      "start crm3@10.0.0.4 haproxy",
      "start crm3@10.0.0.4 vip-manager",
      "restart crm2@10.0.0.2 haproxy",
      "restart crm2@10.0.0.2 vip-manager",
      "restart crm1@10.0.0.1 haproxy",
      "restart crm1@10.0.0.1 vip-manager",
      "verify",
    ]);
  });

  test("what runs at once: every host's files, the survivors' reloads, one host's two proxies", () => {
    const steps = rp.replaceSteps(t, replicaOut);
    expect(rp.batches(steps).map((b) => b.map(line).join(" + "))).toEqual([
      "stop crm3@10.0.0.3 vip-manager + stop crm3@10.0.0.3 haproxy",
      "stop crm3@10.0.0.3 patroni",
      "stop crm3@10.0.0.3 etcd",
      "unmark crm3@10.0.0.3",
      "etcd-remove crm3 c3",
      "etcd-add crm3 https://10.0.0.4:2380",
      "write-settings h",
      "files crm1@10.0.0.1 + files crm2@10.0.0.2 + files crm3@10.0.0.4",
      "reload-patroni crm1@10.0.0.1 + reload-patroni crm2@10.0.0.2",
      "etcd-join crm3@10.0.0.4",
      "start crm3@10.0.0.4 patroni",
      "start crm3@10.0.0.4 haproxy + start crm3@10.0.0.4 vip-manager",
      "restart crm2@10.0.0.2 haproxy + restart crm2@10.0.0.2 vip-manager",
      "restart crm1@10.0.0.1 haproxy + restart crm1@10.0.0.1 vip-manager",
      "verify",
    ]);
  });

  test("OLD leads: a switchover first; OLD dead: nothing asked of it, its member removed all the same", () => {
    const o = { leader: "crm2", members: three, nextEnvHosts: "h" };
    expect(
      rp
        .replaceSteps(t, { ...o, oldIsLeader: true, oldReachable: true })
        .slice(0, 2)
        .map(line),
    ).toEqual(["switchover crm3", "stop crm3@10.0.0.3 vip-manager"]);
    const dead = rp.replaceSteps(t, { ...o, oldIsLeader: false, oldReachable: false }).map(line);
    expect(dead.slice(0, 3)).toEqual([
      "etcd-remove crm3 c3",
      "etcd-add crm3 https://10.0.0.4:2380",
      "write-settings h",
    ]);
    expect(dead.slice(-5)).toEqual([
      "restart crm1@10.0.0.1 haproxy",
      "restart crm1@10.0.0.1 vip-manager",
      "restart crm2@10.0.0.2 haproxy",
      "restart crm2@10.0.0.2 vip-manager",
      "verify",
    ]);
  });

  test("a re-run that finds the replace half done: the settings are not written again, etcd only where it differs", () => {
    const s2 = t.next;
    const half = rp.resolveReplace(s2, t.envText, "crm3", "ops@10.0.0.4");
    const steps = rp
      .replaceSteps(half, {
        oldIsLeader: false,
        leader: "crm1",
        oldReachable: false,
        members: [three[0]!, three[1]!, member("d4", "", "10.0.0.4")],
        nextEnvHosts: "x",
      })
      .map(line);
    expect(steps.slice(0, 3)).toEqual(["files crm1@10.0.0.1", "files crm2@10.0.0.2", "files crm3@10.0.0.4"]);
    expect(steps.some((x) => /^(etcd-remove|etcd-add|write-settings|stop|switchover)/.test(x))).toBe(false);
  });
});
