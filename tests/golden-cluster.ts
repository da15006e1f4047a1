/** Golden set of the cluster on three hosts: each per-host rendered file, secrets masked (see tests/golden.ts). */
import { resolve } from "node:path";
import { CLUSTER_SECRET_KEYS, renderHostFiles, type ClusterSecrets } from "../scripts/lib/cluster/render";
import { parseClusterSettings } from "../scripts/lib/cluster/settings";
import type { GoldenSet } from "./golden";

const ROOT = resolve(import.meta.dir, "..");
export const CRM_ENV =
  "CLUSTER_NAME=crm\nHOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3\nVIP=10.0.0.50\nVIP_INTERFACE=ens10\n";
export const crm = (extra = "") => parseClusterSettings(CRM_ENV + extra, "clusters/crm/cluster.env");
export const clusterSecrets = (): ClusterSecrets =>
  Object.fromEntries(
    CLUSTER_SECRET_KEYS.map((k) => [k, `fixed-${k.toLowerCase()}-xxxxxxxxxxxxxxxx`]),
  ) as unknown as ClusterSecrets;
const mask = (text: string, sec: ClusterSecrets) =>
  Object.entries(sec).reduce((t, [k, v]) => t.split(v).join(`<${k}>`), text);

export const clusterGoldens: GoldenSet = {
  dir: "cluster",
  files: () => {
    const sec = clusterSecrets();
    const out: { name: string; content: string }[] = [];
    for (const [preset, s] of [
      ["lan", crm()],
      ["wan", crm("TIMING=wan\n")],
    ] as const) {
      for (const h of s.hosts) {
        // The wan preset changes Patroni's timing and vip-manager's interval only: one host of it is enough.
        if (preset === "wan" && h.index > 1) continue;
        for (const f of renderHostFiles(ROOT, s, sec, h)) {
          if (preset === "wan" && !/patroni|vip-manager/.test(f.path)) continue;
          out.push({ name: `${preset}__${h.name}${f.path.replaceAll("/", "__")}`, content: mask(f.content, sec) });
        }
      }
    }
    return out;
  },
};
