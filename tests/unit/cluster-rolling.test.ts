import { describe, expect, test } from "bun:test";
import { DRILL_SCENARIOS, isLabCluster, labActions, parseScenario } from "../../scripts/lib/cluster/drill";
import { loadTableSql } from "../../scripts/lib/cluster/load";
import { rollingPlan } from "../../scripts/lib/cluster/rolling";
import { parseClusterSettings } from "../../scripts/lib/cluster/settings";
import { ToolkitError } from "../../scripts/lib/errors";
import { crm } from "../golden-cluster";

const healthy = { ok: true, problems: [] as string[] };

describe("rolling restart: the order, as data", () => {
  test("the plain replica, then the sync standby, then a switchover, then the old leader", () => {
    expect(rollingPlan(crm(), { leader: "crm2", syncStandby: "crm3", health: healthy })).toEqual([
      { action: "restart", member: "crm1" },
      { action: "restart", member: "crm3" },
      { action: "switchover", from: "crm2" },
      { action: "restart", member: "crm2" },
    ]);
  });

  test("refused before anything runs when the cluster is not healthy (no sync standby to keep)", () => {
    let err: unknown;
    try {
      rollingPlan(crm(), {
        leader: "crm1",
        syncStandby: undefined,
        health: { ok: false, problems: ["no sync standby"] },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ToolkitError);
    expect((err as ToolkitError).code).toBe("CLUSTER_NOT_HEALTHY");
    expect((err as ToolkitError).message).toBe(
      "cluster crm is not healthy (no sync standby): a rolling restart needs 3 running members with a sync standby",
    );
  });
});

describe("drill: scenarios and where they can run", () => {
  test("the three scenarios; anything else names the choices", () => {
    expect(DRILL_SCENARIOS).toEqual(["partition-leader", "kill-host", "partition-etcd-minority"]);
    expect(parseScenario("kill-host")).toBe("kill-host");
    expect(() => parseScenario("partition")).toThrow("SCENARIO=partition: no such drill");
  });

  test("only the namespace lab can be cut or powered off; a real cluster is refused with the reason", () => {
    expect(isLabCluster(crm())).toBe(false);
    expect(() => labActions(crm())).toThrow(
      "cluster crm is not the namespace lab: the drill cuts a host's link and kills every process of a host, which needs the lab's switch and network namespaces",
    );
    expect(isLabCluster({ ...crm("HOST_ROOT=/var/lib/pgplab/h%i/root\n"), name: "lab" })).toBe(false);
    const lab = parseClusterSettings(
      "CLUSTER_NAME=lab\nHOSTS=u@10.231.0.11,u@10.231.0.14,u@10.231.0.13\nVIP=10.231.0.50\nHOST_ROOT=/var/lib/pgplab/%a/root\n",
      "clusters/lab/cluster.env",
    );
    expect(isLabCluster(lab)).toBe(true);
    const a = labActions(lab);
    expect(a.onHost(lab.hosts[1]!, ["psql", "-c", "SELECT 1"])).toEqual([
      "ip",
      "netns",
      "exec",
      "pgplab-h4",
      "psql",
      "-c",
      "SELECT 1",
    ]);
  });

  test("the load's table: one bigint key per acknowledged write", () => {
    expect(loadTableSql("pgplatform_drill_load")).toBe(
      "CREATE TABLE IF NOT EXISTS pgplatform_drill_load (id bigint PRIMARY KEY)",
    );
  });
});
