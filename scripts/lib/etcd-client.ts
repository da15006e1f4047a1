/**
 * The toolkit's one way to talk to etcd (health waits, the failover drill's
 * Raft-leader lookup): HTTPS to the member's client URL, verifying etcd by the
 * stack's CA and presenting the toolkit's client certificate (root's, 0600).
 * etcd refuses any request without it.
 */
import type { Config, Member } from "./config";
import { ToolkitError } from "./errors";
import { etcdFetchTls, etcdTlsFiles } from "./etcd-tls";
import { etcdClientTlsDir } from "./stack-files";

export const etcdUrl = (m: Member, path: string) => `https://${m.address}:${m.etcdClientPort}${path}`;

const cache = new Map<string, ReturnType<typeof etcdFetchTls>>();

function tlsFor(cfg: Config) {
  const dir = etcdClientTlsDir(cfg);
  let tls = cache.get(dir);
  if (!tls) {
    try {
      tls = etcdFetchTls(etcdTlsFiles(dir));
    } catch (err) {
      throw new ToolkitError(
        "NO_ETCD_CERT",
        `cannot read the toolkit's etcd client certificate in ${dir}: ${(err as Error).message}`,
        "run `make dev-up` (it creates the stack's CA and certificates) as the user that owns the stack (root)",
      );
    }
    cache.set(dir, tls);
  }
  return tls;
}

/** fetch() against one etcd member over mutual TLS. */
export function etcdFetch(cfg: Config, m: Member, path: string, init: RequestInit = {}): Promise<Response> {
  const tls = tlsFor(cfg);
  return fetch(etcdUrl(m, path), { ...init, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } } as RequestInit);
}
