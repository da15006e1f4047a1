/** Is address:port free? If not, who holds it (from `ss`)? */
import { createServer } from "node:net";
import { run } from "./exec";

export function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export async function portHolder(address: string, port: number): Promise<string> {
  const r = await run(["ss", "-ltnpH", `sport = :${port}`], { nothrow: true, timeoutMs: 5000 });
  const line = r.stdout
    .split("\n")
    .find((l) => l.includes(`${address}:${port}`) || l.includes(`*:${port}`) || l.includes(`0.0.0.0:${port}`));
  const m = line?.match(/users:\(\("([^"]+)",pid=(\d+)/);
  return m ? `${m[1]} (pid ${m[2]})` : "another process";
}
