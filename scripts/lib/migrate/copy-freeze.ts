/**
 * Rewrites pg_dump's plain data stream on the fly so every table is loaded
 * with COPY ... WITH (FREEZE). Legal because the restore creates each table in
 * the same transaction. Frozen rows are written with their hint bits set and
 * pages marked all-visible, so the first read after the load (our
 * verification, then autovacuum) does not rewrite every page; with data
 * checksums on, that first read would otherwise WAL-log a full image of every
 * page and ship it to both replicas.
 *
 * A small state machine: outside COPY data it works line by line (only short
 * SET/comment/setval lines live there); inside COPY data it passes bytes
 * through untouched and only looks for the end marker (a line `\.`), so row
 * contents can never be mistaken for a command.
 */
const END_MARK = Buffer.from("\n\\.\n");
const FROM_STDIN = " FROM stdin;";

export class CopyFreezer {
  private inside = false;
  /** outside: an unfinished line, held back; inside: the last bytes already sent (an end marker may span chunks) */
  private carry: Buffer = Buffer.alloc(0);

  constructor(
    private readonly onTable: (table: string) => void = () => {},
    /** lines outside COPY data to leave out (e.g. settings an older server does not know) */
    private readonly dropLine: (line: string) => boolean = () => false,
  ) {}

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let rest = chunk;
    while (rest.length) rest = this.inside ? this.data(rest, out) : this.text(rest, out);
    return out;
  }

  /** Whatever is held back at the end of the stream. */
  end(): Buffer[] {
    if (this.inside || !this.carry.length) return [];
    const last = this.carry;
    this.carry = Buffer.alloc(0);
    return this.dropLine(last.toString("utf8")) ? [] : [last];
  }

  private data(chunk: Buffer, out: Buffer[]): Buffer {
    // Only the few bytes around a chunk boundary are copied; the bulk is searched in place.
    let endInChunk = -1;
    if (this.carry.length) {
      const head = Buffer.concat([this.carry, chunk.subarray(0, END_MARK.length - 1)]);
      const at = head.indexOf(END_MARK);
      if (at !== -1) endInChunk = at + END_MARK.length - this.carry.length;
    }
    if (endInChunk === -1) {
      const at = chunk.indexOf(END_MARK);
      if (at !== -1) endInChunk = at + END_MARK.length;
    }
    if (endInChunk === -1) {
      out.push(chunk);
      const keep = END_MARK.length - 1;
      this.carry = chunk.length >= keep ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.from(Buffer.concat([this.carry, chunk]).subarray(-keep));
      return Buffer.alloc(0);
    }
    out.push(chunk.subarray(0, endInChunk));
    this.inside = false;
    this.carry = Buffer.alloc(0);
    return chunk.subarray(endInChunk);
  }

  private text(chunk: Buffer, out: Buffer[]): Buffer {
    let buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl === -1) {
        this.carry = Buffer.from(buf);
        return Buffer.alloc(0);
      }
      const line = buf.subarray(0, nl).toString("utf8");
      buf = buf.subarray(nl + 1);
      if (line.startsWith("COPY ") && line.endsWith(FROM_STDIN)) {
        out.push(Buffer.from(`${line.slice(0, -1)} WITH (FREEZE);\n`));
        this.onTable(line.slice(5, line.indexOf(" ", 5)));
        this.inside = true;
        this.carry = Buffer.from("\n"); // an empty table's data is just `\.`
        return buf;
      }
      if (!this.dropLine(line)) out.push(Buffer.from(line + "\n"));
    }
  }
}
