/**
 * What the Redis store's channels and revocation log carry (docs/redis.md, "Messages"), as
 * values: a key channel message or log entry, a secrets channel message.
 */
import { jsonObject } from '../../http/json.ts';
import type { RevocationEvent } from '../key-store.ts';
import { directoryChange, type DirectoryChange } from '../../users/records.ts';
import { pairs } from './record-codec.ts';

/**
 * What the key channel carries: a revocation, or records that changed and stay active, with
 * its number and id in the revocation log (absent from a writer older than the log).
 */
export type KeyChannelMessage = ({ revoked: RevocationEvent } | { changed: string[] } | { directory: DirectoryChange }) & { seq?: number; id?: string };

/** A script's seq and log id as an event's position (none when nothing was logged). */
export function position(seq: unknown, id: unknown): { seq?: number; id?: string } {
  const n = Number(seq);
  return Number.isSafeInteger(n) && n > 0 && typeof id === 'string' && id !== '' ? { seq: n, id } : {};
}

/** A message from the key channel (or a log entry's event), or null if it is neither kind. */
export function parseKeyMessage(message: string): KeyChannelMessage | null {
  const value = jsonObject(message);
  if (value === null) return null;
  const { ids, hashes, at, us, changed, seq, id, dir } = value;
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  // A message's seq must be a number already (a script's reply may carry it as text).
  const where = typeof seq === 'number' ? position(seq, id) : {};
  // cjson encodes an empty Lua table as {}: an empty list of ids.
  const list = (v: unknown): unknown => (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0 ? [] : v);
  if (dir !== undefined) {
    // A user or group change; one that cannot be read is null, and the caller resyncs.
    const d = dir !== null && typeof dir === 'object' ? (dir as Record<string, unknown>) : {};
    const change = directoryChange(d.t, d.k, d.n, d.v);
    return change === null ? null : { directory: change, ...where };
  }
  const changedList = list(changed);
  if (isStrings(changedList)) return { changed: changedList, ...where };
  const idList = list(ids);
  const hashList = list(hashes);
  if (!isStrings(idList) || !isStrings(hashList) || typeof at !== 'number' || !Number.isFinite(at)) return null;
  // `us`: the microseconds within `at`'s millisecond, so lags below 1 ms can be measured.
  const micros = typeof us === 'number' && us >= 0 && us < 1000 ? us : 0;
  return { revoked: { ids: idList, hashes: hashList, at: at + micros / 1000 }, ...where };
}

export interface LogEntry {
  /** The event's number (revocations:seq). */
  n: number;
  /** The stream entry id. */
  id: string;
  /** The event; null if it cannot be read. */
  event: KeyChannelMessage | null;
}

/** An XRANGE / XREVRANGE reply as log entries (entries without a number are left out). */
export function logEntries(reply: unknown): LogEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: LogEntry[] = [];
  for (const item of reply) {
    if (!Array.isArray(item) || item.length < 2) continue;
    const id = String(item[0]);
    const fields = pairs(item[1]);
    const n = Number(fields.n);
    if (!Number.isSafeInteger(n) || n <= 0) continue;
    const parsed = fields.e === undefined ? null : parseKeyMessage(fields.e);
    out.push({ n, id, event: parsed === null ? null : { ...parsed, seq: n, id } });
  }
  return out;
}

/** A secrets-channel message's ids, or null if it is not one. */
export function parseSecretChange(message: string): string[] | null {
  try {
    const value = JSON.parse(message) as { ids?: unknown };
    if (Array.isArray(value.ids) && value.ids.every((x) => typeof x === 'string')) return value.ids as string[];
  } catch {
    // fall through
  }
  return null;
}
