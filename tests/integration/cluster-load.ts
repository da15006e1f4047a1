#!/usr/bin/env bun
/**
 * Write load for the cluster lab, run INSIDE the operator namespace (the
 * test's own process lives in the root namespace, where the lab's addresses
 * do not exist): `ip netns exec pgplab-op bun tests/integration/cluster-load.ts <host> <port> <dir> [first id]`.
 * The drill's load (scripts/lib/cluster/load.ts) on table lab_load: an id is
 * appended to <dir>/acked only after its COMMIT was acknowledged. Stops when
 * <dir>/stop exists; then prints a JSON summary (acked, errors, the longest
 * gap between two acknowledged writes). The password comes from PGPASSWORD.
 */
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startWriteLoad } from "../../scripts/lib/cluster/load";

const [host, port, dir, firstId] = process.argv.slice(2);
const acked = join(dir!, "acked");
writeFileSync(acked, "");
const load = startWriteLoad(
  {
    host: host!,
    port: Number(port),
    password: process.env.PGPASSWORD ?? "",
    table: "lab_load",
    firstId: Number(firstId ?? 1),
  },
  (id) => appendFileSync(acked, `${id}\n`),
);
while (!existsSync(join(dir!, "stop"))) await Bun.sleep(200);
const r = await load.stop();
console.log(
  JSON.stringify({ attempted: r.acked.length + r.errors, errors: r.errors, maxGapMs: r.maxGapMs, gaps: r.gaps }),
);
