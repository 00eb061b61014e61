/**
 * The key record as a Redis hash, derived once from the record's field list
 * (keys/record.ts): every field under its own name, lists as JSON, times as integers (epoch
 * ms); a null field is left out. Fields that always hold a value come first, then the
 * nullable ones, in the schema's order: the same fields, order and listpack encoding as
 * ever (load/README.md: memory per key).
 */
import { decodeRecord, encodeValue, keyRecordFields, type KeyRecord } from '../../keys/record.ts';

/** The hash's fields in the order they are written. */
const HASH_FIELDS = [...keyRecordFields.filter((f) => !f.nullable), ...keyRecordFields.filter((f) => f.nullable)];

/** The record as the field/value list of its Redis hash; null fields are left out. */
export function toFields(record: KeyRecord): string[] {
  const fields: string[] = [];
  for (const field of HASH_FIELDS) {
    const value = encodeValue(field, record[field.name]);
    if (value !== null) fields.push(field.name, String(value));
  }
  return fields;
}

/** A flat [field, value, …] reply (or a RESP3 map) as a plain object. */
export function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply !== null && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

/** An HGETALL reply as a record, or null when it is no record (no id or tenant). */
export function fromFields(reply: unknown): KeyRecord | null {
  const f = pairs(reply);
  if (f.id === undefined || f.tenant === undefined) return null;
  return decodeRecord((field) => f[field.name]);
}

/** A list of HGETALL replies as records (non-records left out). */
export function records(reply: unknown): KeyRecord[] {
  if (!Array.isArray(reply)) return [];
  const out: KeyRecord[] = [];
  for (const item of reply) {
    const record = fromFields(item);
    if (record) out.push(record);
  }
  return out;
}

/** A stored number, or null when absent or not a number. */
export function num(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

export function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** Newest first, then by id: the order every list is answered in. */
export function newestFirst<T extends { createdAt: number; id: string }>(a: T, b: T): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
