/**
 * The secret scanner for the hostile suite's captures (capture.ts): finds every ledger
 * entry of every capture in every captured file, whichever keygate wrote it — a key from
 * one test file leaking through another's keygate counts too.
 *
 * Keys are matched by their 56 random hex digits, case-insensitively, so a key that comes
 * back with another prefix, tenant or checksum, or upper-cased, is still found; hashes,
 * secret values, the pepper and the master key verbatim. Files are read as latin1, so an
 * offset in the text is a byte offset in the file (a key's `responsesAfter`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LedgerEntry, SecretKind } from './capture.ts';

export interface Finding {
  kind: SecretKind;
  /** The first characters of the secret only: the report must not leak it in full either. */
  hint: string;
  file: string;
  offset: number;
  context: string;
}

export interface ScanInput {
  /** File name → contents (latin1). */
  files: Map<string, string>;
  /** Capture prefix (file name without extension) → its ledger. */
  ledgers: Map<string, LedgerEntry[]>;
}

const RANDOM_HEX = 56;
const HASH_LENGTH = 43;

function prefixOf(file: string): string {
  return file.replace(/\.(responses|log|audit|notifications)$/, '');
}

export function scan({ files, ledgers }: ScanInput): Finding[] {
  /** random part → the key's ledger entry and capture prefix. */
  const randoms = new Map<string, { entry: LedgerEntry; prefix: string }>();
  const hashes = new Map<string, LedgerEntry>();
  const verbatim: LedgerEntry[] = [];
  for (const [prefix, ledger] of ledgers) {
    for (const entry of ledger) {
      if (entry.kind === 'key') randoms.set(entry.value.slice(-64, -8).toLowerCase(), { entry, prefix });
      else if (entry.kind === 'hash') hashes.set(entry.value, entry);
      else if (!verbatim.some((v) => v.value === entry.value)) verbatim.push(entry);
    }
  }
  const findings: Finding[] = [];
  const found = (entry: LedgerEntry, file: string, text: string, offset: number) =>
    findings.push({ kind: entry.kind, hint: `${entry.value.slice(0, 12)}…`, file, offset, context: JSON.stringify(text.slice(Math.max(0, offset - 60), offset)) });
  for (const [file, text] of files) {
    const lower = text.toLowerCase();
    for (const match of lower.matchAll(/[0-9a-f]{56,}/g)) {
      for (let i = 0; i + RANDOM_HEX <= match[0].length; i++) {
        const hit = randoms.get(match[0].slice(i, i + RANDOM_HEX));
        if (hit === undefined) continue;
        const offset = match.index + i;
        // Its own creation response may hold it; nothing written after that may.
        const allowed = file.endsWith('.responses') && prefixOf(file) === hit.prefix && hit.entry.responsesAfter !== undefined && offset < hit.entry.responsesAfter;
        if (!allowed) found(hit.entry, file, text, offset);
      }
    }
    for (const match of text.matchAll(/[A-Za-z0-9_-]{43,}/g)) {
      for (let i = 0; i + HASH_LENGTH <= match[0].length; i++) {
        const entry = hashes.get(match[0].slice(i, i + HASH_LENGTH));
        if (entry !== undefined) found(entry, file, text, match.index + i);
      }
    }
    for (const entry of verbatim) {
      for (let at = text.indexOf(entry.value); at !== -1; at = text.indexOf(entry.value, at + 1)) found(entry, file, text, at);
    }
  }
  return findings;
}

/** Reads a capture directory as written by capture.ts. */
export function readCaptures(dir: string): ScanInput {
  const files = new Map<string, string>();
  const ledgers = new Map<string, LedgerEntry[]>();
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.secrets.json')) ledgers.set(name.slice(0, -'.secrets.json'.length), JSON.parse(readFileSync(join(dir, name), 'utf8')) as LedgerEntry[]);
    else files.set(name, readFileSync(join(dir, name), 'latin1'));
  }
  return { files, ledgers };
}
