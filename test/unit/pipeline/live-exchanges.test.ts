/**
 * The long-lived exchange registry alone (fake clock-free verifier, real timers): pushed
 * revocations end a key's exchanges and no other, the one deadline per exchange follows
 * keyEndsAt (expiry, rotation overlap, a token's exp), a changed record re-arms it, a
 * re-check ends what no longer verifies, registration never ends synchronously, and
 * removed exchanges are forgotten. And EventBoundary: where SSE bytes stand between events.
 */
import { testDirectory } from '../../helpers/directory.ts';
import { describe, expect, it } from 'vitest';
import { toIdentity, type Identity } from '../../../src/auth/identity.ts';
import type { VerifyResult } from '../../../src/auth/verify.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';
import { EventBoundary } from '../../../src/pipeline/forward.ts';
import { LiveExchanges, type EndReason, type LiveExchange, type LiveKind } from '../../../src/pipeline/live-exchanges.ts';

function identity(id: string, times: Partial<Pick<KeyRecord, 'status' | 'expiresAt' | 'revokesAt'>> = {}, issuer?: string): Identity {
  const record = { id, tenant: 'acme', status: 'active', expiresAt: null, revokesAt: null, permissions: [], group: null, rateLimits: [], quota: null, ...times } as unknown as KeyRecord;
  const base = toIdentity(record, testDirectory({}));
  return issuer === undefined ? base : { ...base, issuer };
}

class Owner implements LiveExchange {
  readonly ended: EndReason[] = [];
  readonly kind: LiveKind;
  constructor(kind: LiveKind = 'event-stream') {
    this.kind = kind;
  }
  end(reason: EndReason): void {
    this.ended.push(reason);
  }
}

function registry(answers: Map<string, VerifyResult | Promise<VerifyResult>>): LiveExchanges {
  return new LiveExchanges({ verifier: { verifyHash: (hash) => answers.get(hash) ?? 'invalid_key', hashOf: (key) => `h:${key}` }, recheckMs: 60_000 });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('LiveExchanges', () => {
  it('ends every exchange of a revoked key, once, and no other', async () => {
    const a = identity('a');
    const b = identity('b');
    const live = registry(new Map([['ha', a], ['hb', b]]));
    const [a1, a2, b1] = [new Owner(), new Owner('websocket'), new Owner('response')];
    live.add(a1, a, 'ha');
    live.add(a2, a, 'ha');
    live.add(b1, b, 'hb');
    expect(live.revoked(['a'])).toBe(2);
    expect(live.revoked(['a'])).toBe(0);
    expect([a1.ended, a2.ended, b1.ended]).toEqual([['key_revoked'], ['key_revoked'], []]);
  });

  it('arms one deadline at keyEndsAt: expiry, the end of a rotation overlap, or a token exp; never ends inside add', async () => {
    const now = Date.now();
    const expiring = identity('e', { expiresAt: now + 40 });
    const rotating = identity('r', { expiresAt: now + 10_000, revokesAt: now + 40 });
    const token = identity('', { expiresAt: now + 40 }, 'idp');
    const live = registry(new Map([['he', expiring], ['hr', rotating]]));
    const owners = [new Owner(), new Owner(), new Owner()];
    live.add(owners[0]!, expiring, 'he');
    live.add(owners[1]!, rotating, 'hr');
    live.add(owners[2]!, token, null);
    const gone = new Owner();
    live.add(gone, identity('x', { status: 'revoked' }), 'hx'); // the verifier says invalid_key
    expect(gone.ended).toEqual([]);
    await sleep(10);
    expect(gone.ended).toEqual(['invalid_key']);
    expect(owners.map((o) => o.ended)).toEqual([[], [], []]);
    await sleep(80);
    expect(owners.map((o) => o.ended)).toEqual([['key_expired'], ['key_revoked'], ['key_expired']]);
  });

  it('re-arms the deadline from the fresh record when it changed, and ends what a re-check no longer verifies', async () => {
    const before = identity('k');
    const answers = new Map<string, VerifyResult | Promise<VerifyResult>>([['hk', before]]);
    const live = registry(answers);
    const owner = new Owner();
    live.add(owner, before, 'hk');
    answers.set('hk', Promise.resolve(identity('k', { revokesAt: Date.now() + 30 })));
    live.changed(['hk', 'other']);
    await sleep(10);
    expect(owner.ended).toEqual([]);
    await sleep(50);
    expect(owner.ended).toEqual(['key_revoked']);

    const other = new Owner();
    answers.set('hm', identity('m'));
    live.add(other, identity('m'), 'hm');
    await sleep(5);
    expect(other.ended).toEqual([]);
    const down = Promise.reject(new Error('store down'));
    down.catch(() => {});
    answers.set('hm', down);
    live.recheck();
    await sleep(5);
    expect(other.ended).toEqual(['auth_unavailable']);
  });

  it('forgets removed exchanges (and their timers); endAll ends one kind at shutdown', async () => {
    const k = identity('k', { expiresAt: Date.now() + 30 });
    const live = registry(new Map([['hk', k]]));
    const removed = new Owner();
    const entry = live.add(removed, k, 'hk');
    live.remove(entry);
    const ws = new Owner('websocket');
    const sse = new Owner('event-stream');
    live.add(ws, null, null);
    live.add(sse, null, null);
    expect(live.count()).toBe(2);
    expect(live.count('websocket')).toBe(1);
    expect(live.endAll('shutdown', 'event-stream')).toBe(1);
    expect([ws.ended, sse.ended]).toEqual([[], ['shutdown']]);
    await sleep(50);
    expect(removed.ended).toEqual([]);
    expect(live.revoked(['k'])).toBe(0);
  });
});

describe('EventBoundary', () => {
  const at = (...chunks: string[]) => {
    const b = new EventBoundary();
    for (const c of chunks) b.observe(Buffer.from(c));
    return b.atBoundary;
  };

  it('is between events at the start and after a blank line in any line-end spelling', () => {
    expect(at()).toBe(true);
    for (const text of ['data: x\n\n', 'data: x\r\n\r\n', 'data: x\r\r', 'data: x\n\r\n', 'data: x\r\n\n', 'data: x\n\r', ': comment\n\n']) expect(at(text), JSON.stringify(text)).toBe(true);
    for (const text of ['data: x', 'data: x\n', 'data: x\r\n', 'data: x\r', 'data: x\n\ndata: y']) expect(at(text), JSON.stringify(text)).toBe(false);
  });

  it('follows a blank line split across chunks, one byte at a time', () => {
    expect(at('data: x\n', '\n')).toBe(true);
    expect(at('data: x\r', '\n', '\r', '\n')).toBe(true);
    expect(at('data: x\n\n', 'd')).toBe(false);
  });

  it('finds where the event under way ends in the next chunk', () => {
    const b = new EventBoundary();
    b.observe(Buffer.from('id: 1\ndata: first'));
    expect(b.endOfEvent(Buffer.from(' half'))).toBe(-1);
    const next = Buffer.from('\ndata: second\n\nid: 2\ndata: x\n\n');
    expect(next.subarray(0, b.endOfEvent(next)).toString()).toBe('\ndata: second\n\n');
    const after = new EventBoundary();
    after.observe(Buffer.from('data: y\n'));
    expect(after.endOfEvent(Buffer.from('\nid: 3'))).toBe(1);
  });
});
