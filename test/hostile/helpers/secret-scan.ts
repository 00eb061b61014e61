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
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
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

interface Index {
  /** random part → the key's ledger entry and capture prefix. */
  randoms: Map<string, { entry: LedgerEntry; prefix: string }>;
  hashes: Map<string, LedgerEntry>;
  verbatim: LedgerEntry[];
}

function index(ledgers: Map<string, LedgerEntry[]>): Index {
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
  return { randoms, hashes, verbatim };
}

/**
 * Scans `text`, which starts at byte `base` of `file`, reporting what starts before `limit`
 * (the rest is scanned again, whole, with the next piece).
 */
function scanText(idx: Index, file: string, text: string, base: number, limit: number, findings: Finding[]): void {
  const found = (entry: LedgerEntry, at: number) => {
    if (at >= limit) return;
    findings.push({ kind: entry.kind, hint: `${entry.value.slice(0, 12)}…`, file, offset: base + at, context: JSON.stringify(text.slice(Math.max(0, at - 60), at)) });
  };
  const lower = text.toLowerCase();
  for (const match of lower.matchAll(/[0-9a-f]{56,}/g)) {
    for (let i = 0; i + RANDOM_HEX <= match[0].length; i++) {
      const hit = idx.randoms.get(match[0].slice(i, i + RANDOM_HEX));
      if (hit === undefined) continue;
      const at = match.index + i;
      // Its own creation response may hold it; nothing written after that may.
      const allowed = file.endsWith('.responses') && prefixOf(file) === hit.prefix && hit.entry.responsesAfter !== undefined && base + at < hit.entry.responsesAfter;
      if (!allowed) found(hit.entry, at);
    }
  }
  for (const match of text.matchAll(/[A-Za-z0-9_-]{43,}/g)) {
    for (let i = 0; i + HASH_LENGTH <= match[0].length; i++) {
      const entry = idx.hashes.get(match[0].slice(i, i + HASH_LENGTH));
      if (entry !== undefined) found(entry, match.index + i);
    }
  }
  for (const entry of idx.verbatim) {
    for (let at = text.indexOf(entry.value); at !== -1; at = text.indexOf(entry.value, at + 1)) found(entry, at);
  }
}

/** Scans texts held in memory. */
export function scan({ files, ledgers }: ScanInput): Finding[] {
  const idx = index(ledgers);
  const findings: Finding[] = [];
  for (const [file, text] of files) scanText(idx, file, text, 0, text.length, findings);
  return findings;
}

/**
 * Bytes read at a time, and how many of them are scanned again with the next piece: more
 * than the longest thing looked for, so nothing that crosses a boundary is missed.
 */
const PIECE = 16 * 1024 * 1024;
const OVERLAP = 16 * 1024;

export interface DirScan {
  findings: Finding[];
  files: number;
  bytes: number;
  keygates: number;
  secrets: number;
}

/** Scans a capture directory as written by capture.ts and child.ts, file by file, piece by piece. */
export function scanDir(dir: string, piece = PIECE, overlap = OVERLAP): DirScan {
  if (piece <= overlap) throw new Error('scanDir: a piece must be longer than the overlap');
  const ledgers = new Map<string, LedgerEntry[]>();
  const names = readdirSync(dir);
  for (const name of names) {
    if (name.endsWith('.secrets.json')) ledgers.set(name.slice(0, -'.secrets.json'.length), JSON.parse(readFileSync(join(dir, name), 'utf8')) as LedgerEntry[]);
  }
  const idx = index(ledgers);
  const findings: Finding[] = [];
  let bytes = 0;
  let files = 0;
  const buffer = Buffer.allocUnsafe(piece + overlap);
  for (const name of names) {
    if (name.endsWith('.secrets.json')) continue;
    files++;
    const fd = openSync(join(dir, name), 'r');
    try {
      let carried = 0;
      for (let position = 0; ; ) {
        const read = readSync(fd, buffer, carried, piece, position);
        const length = carried + read;
        const last = read < piece;
        const limit = last ? length : length - overlap;
        scanText(idx, name, buffer.toString('latin1', 0, length), position - carried, limit, findings);
        position += read;
        bytes += read;
        if (last) break;
        carried = length - limit;
        buffer.copy(buffer, 0, limit, length);
      }
    } finally {
      closeSync(fd);
    }
  }
  return { findings, files, bytes, keygates: ledgers.size, secrets: [...ledgers.values()].reduce((n, l) => n + l.length, 0) };
}

/** Reads a capture directory into memory (small directories: tests of the scanner). */
export function readCaptures(dir: string): ScanInput {
  const files = new Map<string, string>();
  const ledgers = new Map<string, LedgerEntry[]>();
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.secrets.json')) ledgers.set(name.slice(0, -'.secrets.json'.length), JSON.parse(readFileSync(join(dir, name), 'utf8')) as LedgerEntry[]);
    else files.set(name, readFileSync(join(dir, name), 'latin1'));
  }
  return { files, ledgers };
}
