/**
 * The key record: everything keygate knows about a key except the key itself. Its shape is
 * written once, here, as `keyRecordSchema`; everything else is derived from it:
 *
 *  - `KeyRecord`, the type the hot path uses (z.infer): a plain object, times in epoch
 *    milliseconds so the hot path compares numbers, not dates. Stores build it with the
 *    codecs below, never by parsing with zod;
 *  - `publicKeyRecordSchema` / `toPublic`: the JSON shape shown to people and scripts (ISO
 *    dates), which the admin API answers with (admin/schemas.ts) and documents
 *    (admin/openapi.ts);
 *  - `keyRecordFields`: the field list with each field's kind, from which the Redis hash
 *    codec (store/redis/record-codec.ts) and the SQLite row codec
 *    (store/embedded/record-rows.ts) are built once, at module load.
 */
import { z } from 'zod';
import { keyState } from './key-state.ts';

/** Epoch milliseconds in the record; an ISO 8601 date in the public shape. */
const epochMs = z.number().int();

export const keyRecordSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  /** A stored role that cannot be read is the lesser one. */
  role: z.enum(['api-user', 'admin']).catch('api-user'),
  /** Explicit permissions; ignored when `group` is set or `permissionsFrom` is `user`. */
  permissions: z.array(z.string()),
  /** A permission group (the tenant's own, else config's), resolved at verification time. */
  group: z.string().nullable(),
  /** The user the key acts as: sent upstream for attribution; a name only, unless `permissionsFrom` is `user`. */
  user: z.string().nullable(),
  /**
   * `user`: the key was created for an existing user of its tenant and has that user's
   * permission group at request time (a disabled user's keys are refused). `key`: its own
   * permissions or group. Records written before users existed read as `key`.
   */
  permissionsFrom: z.enum(['key', 'user']).catch('key').describe("'user': the key takes its permissions from its user's group at request time; 'key': from its own permissions or group"),
  /**
   * `sandbox` keys reach only a route's sandbox upstream (and say so in the key itself,
   * keys/format.ts); records written before environments existed read as `live`.
   */
  environment: z.enum(['live', 'sandbox']).catch('live').describe("'live' keys reach a route's upstream; 'sandbox' keys only its sandbox upstream"),
  client: z.string().nullable(),
  /**
   * Rate limits of this key on every route (`20/s`, `50000/1d`: limits/rate.ts), besides its
   * group's, its tenant's and the route's. Records written before limits existed have none.
   */
  rateLimits: z.array(z.string()).describe('rate limits of this key on every route, e.g. ["20/s", "50000/1d"]'),
  /** The key's budget (limits/quota.ts): `10000/day`, `300000/month`, `5000 credits`, `5000 credits/month`; null: none. */
  quota: z.string().nullable().describe('the key\'s budget: "10000/day", "300000/month", "5000 credits" or "5000 credits/month"; null: none'),
  /**
   * What the store holds. Whether the key works now is keyState (key-state.ts): a stored
   * `active` key may be expired, or past its rotation's `revokesAt`. Anything but a readable
   * `active` is revoked: fail closed.
   */
  status: z.enum(['active', 'revoked']).catch('revoked'),
  prefix: z.string().describe('display prefix, e.g. kg_acme_3f9a…'),
  createdAt: epochMs,
  expiresAt: epochMs.nullable(),
  revokedAt: epochMs.nullable(),
  /**
   * When a rotation's overlap ends: from then on the key is refused on every request, as
   * if revoked, and the next sweep revokes it in the store. Null when none is scheduled.
   */
  revokesAt: epochMs.nullable().describe("when a rotation's overlap ends: the key is refused from then on (and revoked by the next sweep)"),
  lastUsedAt: epochMs.nullable(),
});

export type KeyRecord = z.infer<typeof keyRecordSchema>;
export type Role = KeyRecord['role'];
export type KeyStatus = KeyRecord['status'];

// ---- the field list, for the store codecs -------------------------------------------------

/** How a field is stored: `text` as is, `list` as JSON, `time` as an integer (epoch ms). */
export type FieldKind = 'text' | 'list' | 'time';

export interface RecordField {
  name: keyof KeyRecord;
  kind: FieldKind;
  /** Null is a value of the field (stored as an absent hash field / a NULL column). */
  nullable: boolean;
  /** The values an enum field may hold (null: any text). */
  values: readonly string[] | null;
  /** What a stored value that is missing or cannot be read decodes as (nullable fields: null). */
  unreadable: KeyRecord[keyof KeyRecord];
}

function describeField(name: keyof KeyRecord, schema: z.ZodType): RecordField {
  const nullable = schema instanceof z.ZodNullable;
  const inner = (nullable ? schema.unwrap() : schema) as z.ZodType;
  const base = inner instanceof z.ZodCatch ? (inner.unwrap() as z.ZodType) : inner;
  const kind: FieldKind = base instanceof z.ZodNumber ? 'time' : base instanceof z.ZodArray ? 'list' : 'text';
  const values = base instanceof z.ZodEnum ? (base.options as string[]) : null;
  // Once, at load: what the schema says an unreadable value is.
  const unreadable = nullable ? null : inner instanceof z.ZodCatch ? (inner.parse(undefined) as string) : kind === 'time' ? 0 : kind === 'list' ? [] : '';
  return { name, kind, nullable, values, unreadable };
}

/** The record's fields in schema order, with how each is stored. */
export const keyRecordFields: readonly RecordField[] = Object.entries(keyRecordSchema.shape).map(([name, schema]) => describeField(name as keyof KeyRecord, schema));

type Stored = string | number | null | undefined;

/** A field's decoder, chosen once per field at load: a stored value, checked against the field's kind. */
function decoderFor(field: RecordField): (value: Stored) => unknown {
  const { unreadable, values } = field;
  if (field.kind === 'time') {
    return (value) => {
      const n = value === undefined || value === null || value === '' ? NaN : Number(value);
      return Number.isFinite(n) ? n : unreadable;
    };
  }
  if (field.kind === 'list') {
    // A new list for each record that cannot be read: records are never shared.
    const fallback = (): unknown => (unreadable === null ? null : []);
    return (value) => {
      if (value === undefined || value === null) return fallback();
      try {
        const parsed: unknown = JSON.parse(String(value));
        return Array.isArray(parsed) ? parsed.map(String) : fallback();
      } catch {
        return fallback();
      }
    };
  }
  if (values !== null) return (value) => (typeof value === 'string' && values.includes(value) ? value : unreadable);
  return (value) => (value === undefined || value === null ? unreadable : String(value));
}

const decoders = keyRecordFields.map((field) => ({ field, decode: decoderFor(field) }));

/**
 * A record from a store's stored values, one lookup per field (`read` gives undefined or
 * null for a missing one). No zod parse: every value is checked against its field's kind,
 * and one that cannot be read becomes the field's `unreadable` value (fail closed).
 */
export function decodeRecord(read: (field: RecordField) => Stored): KeyRecord {
  const record: Record<string, unknown> = {};
  for (const { field, decode } of decoders) record[field.name] = decode(read(field));
  return record as KeyRecord;
}

/** A field's value as stored text (null stays null: the field is left out / NULL). */
export function encodeValue(field: RecordField, value: KeyRecord[keyof KeyRecord]): string | number | null {
  if (value === null) return null;
  if (field.kind === 'list') return JSON.stringify(value);
  return value as string | number;
}

// ---- the public shape -------------------------------------------------------------------

export const isoDate = z.string().describe('ISO 8601 date-time');

const publicStatus = z
  .enum(['active', 'expired', 'revoked'])
  .describe("what the proxy does with the key at the time of the answer: 'active' is served (a rotating key stays active until its revokesAt), 'expired' is past expiresAt, 'revoked' was revoked or is past its revokesAt");

type Shape = typeof keyRecordSchema.shape;
type PublicField<S> = S extends z.ZodNullable<z.ZodNumber> ? z.ZodNullable<typeof isoDate> : S extends z.ZodNumber ? typeof isoDate : S extends z.ZodCatch<infer T> ? T : S;
type PublicShape = { [K in keyof Shape]: K extends 'status' ? typeof publicStatus : PublicField<Shape[K]> };

/** A record field as shown: times as ISO dates, descriptions kept; no read fallbacks. */
function publicField(field: RecordField, schema: z.ZodType): z.ZodType {
  if (field.name === 'status') return publicStatus;
  let shown: z.ZodType = schema;
  if (field.kind === 'time') shown = field.nullable ? isoDate.nullable() : isoDate;
  else if (schema instanceof z.ZodCatch) shown = schema.unwrap() as z.ZodType;
  const description = schema.description;
  return description !== undefined && field.kind === 'time' ? shown.describe(description) : shown;
}

/**
 * The JSON shape shown to people and scripts: ISO dates, never the key or its hash;
 * `status` is keyState at the time of the answer: what the proxy does with the key now.
 */
export const publicKeyRecordSchema = z.object(
  Object.fromEntries(keyRecordFields.map((field) => [field.name, publicField(field, keyRecordSchema.shape[field.name])])) as PublicShape,
);

export type PublicKeyRecord = z.infer<typeof publicKeyRecordSchema>;

/** `status` is keyState(record, now): the same answer the proxy would give at `now`. */
export function toPublic(record: KeyRecord, now: number = Date.now()): PublicKeyRecord {
  const shown: Record<string, unknown> = {};
  for (const field of keyRecordFields) {
    const value = record[field.name];
    shown[field.name] = field.name === 'status' ? keyState(record, now) : field.kind === 'time' && value !== null ? new Date(value as number).toISOString() : value;
  }
  return shown as PublicKeyRecord;
}

