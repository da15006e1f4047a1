#!/usr/bin/env bun
/**
 * Write load for the cluster lab, run INSIDE the operator namespace (the
 * test's own process lives in the root namespace, where the lab's addresses
 * do not exist): `ip netns exec pgplab-op bun tests/integration/cluster-load.ts <host> <port> <dir> [first id]`.
 * One row per unique id; an id is appended to <dir>/acked only after its
 * COMMIT was acknowledged. Stops when <dir>/stop exists; then prints a JSON
 * summary (acked, errors, the longest gap between two acknowledged writes).
 * The password comes from PGPASSWORD (environment, never argv).
 */
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

const [host, port, dir, firstId] = process.argv.slice(2);
const acked = join(dir!, "acked");
writeFileSync(acked, "");
let client: pg.Client | undefined;
// Each round of a test starts at its own first id: ids stay unique across rounds in one table.
let id = Number(firstId ?? 1) - 1;
let errors = 0;
let last = Date.now();
let maxGap = 0;
let gapEndedAt = 0;
const connect = async () => {
  const c = new pg.Client({
    host,
    port: Number(port),
    user: "postgres",
    password: process.env.PGPASSWORD,
    database: "postgres",
    connectionTimeoutMillis: 1000,
    query_timeout: 2000,
  });
  c.on("error", () => {});
  await c.connect();
  return c;
};
while (!existsSync(join(dir!, "stop"))) {
  try {
    client ??= await connect();
    const next = ++id;
    await client.query("INSERT INTO lab_load (id) VALUES ($1)", [next]);
    appendFileSync(acked, `${next}\n`);
    const now = Date.now();
    if (now - last > maxGap) {
      maxGap = now - last;
      gapEndedAt = now;
    }
    last = now;
    await Bun.sleep(20);
  } catch {
    errors++;
    await client?.end().catch(() => {});
    client = undefined;
    await Bun.sleep(100);
  }
}
await client?.end().catch(() => {});
console.log(JSON.stringify({ attempted: id, errors, maxGapMs: maxGap, gapEndedAt }));
