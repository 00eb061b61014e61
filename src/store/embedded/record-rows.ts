/**
 * The key record as a row of the `keys` table, derived once from the record's field list
 * (keys/record.ts): one column per field, in snake_case (`group` and `user`, SQL words,
 * are `grp` and `user_name`), lists as JSON text, times as INTEGER epoch ms, NULL for null;
 * plus the key's `hash`, unique.
 */
import { decodeRecord, encodeValue, keyRecordFields, type KeyRecord } from '../../keys/record.ts';

const RESERVED: Partial<Record<keyof KeyRecord, string>> = { group: 'grp', user: 'user_name' };

function columnOf(name: keyof KeyRecord): string {
  return RESERVED[name] ?? name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const COLUMNS = keyRecordFields.map((field) => ({ field, column: columnOf(field.name) }));

/** Each record column: its definition, and what a row written before it existed holds (null: NULL). */
export const KEY_COLUMNS = COLUMNS.filter(({ field }) => field.name !== 'id').map(({ field, column }) => ({
  column,
  definition: `${column} ${field.kind === 'time' ? 'INTEGER' : 'TEXT'}${field.nullable ? '' : ' NOT NULL'}`,
  absent: field.nullable ? null : field.kind === 'list' ? '[]' : (field.unreadable as string | number),
}));

/** The `keys` table's columns, for CREATE TABLE. */
export const KEY_COLUMNS_SQL = ['id TEXT PRIMARY KEY', 'hash TEXT NOT NULL UNIQUE', ...KEY_COLUMNS.map((c) => c.definition)].join(',\n  ');

/** INSERT of a record and its hash: the values are `rowValues(record, hash)`. */
export const INSERT_KEY_SQL = `INSERT INTO keys (hash, ${COLUMNS.map((c) => c.column).join(', ')}) VALUES (${['?', ...COLUMNS.map(() => '?')].join(', ')})`;

export function rowValues(record: KeyRecord, hash: string): (string | number | null)[] {
  return [hash, ...COLUMNS.map(({ field }) => encodeValue(field, record[field.name]))];
}

export type KeyRow = Record<string, string | number | null>;

const columnByField = new Map(COLUMNS.map(({ field, column }) => [field.name, column]));

export function fromRow(row: KeyRow): KeyRecord {
  return decodeRecord((field) => row[columnByField.get(field.name)!]);
}
