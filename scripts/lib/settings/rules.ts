/**
 * The validators every settings table shares (envs, clients, clusters), so an
 * address, a port or a name is judged the same way in every file. Each call
 * builds a fresh schema: `setting()` attaches the key's hint to the instance.
 */
import { z } from "zod";

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const octets = (s: string) => s.split(".").every((o) => Number(o) <= 255);
const DNS_NAME = /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

/** Database names (the environment ladder, apps). */
export const DB_NAME_RE = /^[a-z][a-z0-9_]{1,30}$/;
/** CLUSTER_NAME in an env file: the Patroni scope and etcd token. */
export const CLUSTER_NAME_RE = /^[a-z][a-z0-9-]{1,40}$/;
/** A customer's name: clients/<name>, stack client-<name>. */
export const CLIENT_NAME_RE = /^[a-z][a-z0-9]{1,20}$/;
/** A multi-host cluster's name: clusters/<name>. */
export const CLUSTERS_NAME_RE = /^[a-z][a-z0-9]{1,20}$/;
/** An ssh destination: [user@]host (user names as useradd accepts them). */
export const SSH_DEST_RE = /^([a-z_][a-z0-9_.-]*@)?[A-Za-z0-9.-]+$/;

export const ipv4 = () =>
  z
    .string()
    .regex(IPV4, "must be an IPv4 address like 127.0.0.11")
    .refine(octets, "each part of an IPv4 address must be 0-255");

/** An IPv4 network: a.b.c.d/n, each part 0-255, n 0-32. */
export const cidr = () =>
  z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "must be an IPv4 CIDR like 127.0.0.0/8")
    .refine(
      (s) => octets(s.split("/")[0] ?? "") && Number(s.split("/")[1]) <= 32,
      "each part of an IPv4 CIDR must be 0-255, the prefix 0-32",
    );

/** A whole number from min (and up to max), with messages that name the unit. */
export function whole(min: number, o: { max?: number; unit?: string; minMessage?: string; maxMessage?: string } = {}) {
  const u = o.unit ? ` of ${o.unit}` : "";
  const s = z.coerce
    .number({ message: `must be a number${u}` })
    .int(`must be a whole number${u}`)
    .min(min, o.minMessage ?? (min === 0 ? "must be 0 or more" : `must be at least ${min}`));
  return o.max === undefined ? s : s.max(o.max, o.maxMessage ?? `must be at most ${o.max}`);
}

export const port = () => whole(1, { max: 65535, minMessage: "must be 1-65535", maxMessage: "must be 1-65535" });
export const seconds = (min: number) => whole(min, { unit: "seconds" });

/** "true" | "false" as a boolean. */
export const bool = () =>
  z.enum(["true", "false"], { message: "must be true or false" }).transform((v) => v === "true");

/** One of a few words, with a message that lists them ("must be a, b or c"). */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const words = values.length > 1 ? `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}` : values[0];
  return z.enum(values, { message: `must be ${words}` });
}

/** A comma-separated list (blanks around items and empty items dropped), each item checked. */
export const list = <T>(item: z.ZodType<T, string>) =>
  z
    .string()
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item));

/** Exactly three distinct member addresses (one etcd + Patroni member each). */
export const memberAddresses = () =>
  list(ipv4())
    .refine((a) => a.length === 3, "must list exactly 3 addresses")
    .refine((a) => new Set(a).size === a.length, "addresses must differ");

/** A DNS name with at least one dot; `empty` also accepts "". */
export const dnsName = (example: string, empty = false) =>
  z
    .string()
    .regex(
      empty ? new RegExp(`^$|${DNS_NAME.source}`) : DNS_NAME,
      `must be a DNS name like ${example}${empty ? ", or empty" : ""}`,
    );

/** A Cloudflare tunnel's UUID or name (or empty). */
export const tunnelId = () =>
  z.string().regex(/^$|^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be the tunnel's UUID or name");

/** An image reference: [registry[:port]/]name[:tag][@sha256:...], lower-case name; empty keeps the compose file's pin. */
export const IMAGE_RE =
  /^$|^([a-z0-9.-]+(:\d+)?\/)?[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
export const image = () => z.string().regex(IMAGE_RE, "must be an image reference like registry/name:tag");
