/**
 * Who reads each rendered secret file inside its container. The files are 0600 (they hold
 * passwords), and the images run as non-root users, so a root-owned copy cannot be read: the
 * first real run (podman, issue 21) had every Patroni member and HAProxy exit with
 * "Permission denied" on their own config. Each file is owned by its image's user instead;
 * the ids are those of the upstream images, and images/*\/Containerfile uses the same ones.
 */
import { isRoot } from "./exec";

/** postgres in the official postgres image (and images/patroni); haproxy in the official haproxy image (and images/haproxy). */
export const IMAGE_USERS = {
  patroni: { uid: 999, gid: 999 },
  haproxy: { uid: 99, gid: 99 },
} as const;

/** The owner a rendered file (path relative to the rendered-docker folder) needs; undefined: root keeps it. */
export function renderedOwner(path: string): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  if (/^pg\d+\/patroni\.yml$/.test(path)) return IMAGE_USERS.patroni;
  if (path === "haproxy/haproxy.cfg") return IMAGE_USERS.haproxy;
  return undefined;
}
