/**
 * The forward-auth transport's own small pieces (src/transports/forward-auth.ts): which
 * connection addresses may ask (forwardAuth.trustedProxies), and the problem repeated in the
 * X-Keygate-Problem header of /nginx refusals (nginx keeps an auth answer's headers, not its body).
 */
import { describe, expect, it } from 'vitest';
import { problemBody } from '../../../src/http/problem.ts';
import { problemHeader, trustedAddresses } from '../../../src/transports/forward-auth.ts';

describe('trustedAddresses', () => {
  it('matches addresses and CIDR ranges; an IPv4-mapped IPv6 address is its IPv4 address', () => {
    const trusted = trustedAddresses(['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1']);
    expect(trusted('10.200.3.4')).toBe(true);
    expect(trusted('::ffff:10.200.3.4')).toBe(true);
    expect(trusted('192.0.2.7')).toBe(true);
    expect(trusted('::ffff:192.0.2.7')).toBe(true);
    expect(trusted('192.0.2.8')).toBe(false);
    expect(trusted('fd12::1')).toBe(true);
    expect(trusted('::1')).toBe(true);
    expect(trusted('127.0.0.1')).toBe(false);
    expect(trusted('11.0.0.1')).toBe(false);
    expect(trusted('')).toBe(false);
    expect(trusted('not-an-address')).toBe(false);
  });

  it('the default, loopback only', () => {
    const trusted = trustedAddresses(['127.0.0.1', '::1']);
    expect(trusted('127.0.0.1')).toBe(true);
    expect(trusted('::ffff:127.0.0.1')).toBe(true);
    expect(trusted('127.0.0.2')).toBe(false);
  });
});

describe('problemHeader', () => {
  it('is the problem body as JSON, with anything outside printable ASCII escaped (a valid header value, the same JSON)', () => {
    const detail = 'this route needs the permissions: lesen, schreiben → ok "quoted"';
    const value = problemHeader('forbidden_permission', detail);
    expect(value).toMatch(/^[\x20-\x7e]+$/);
    expect(JSON.parse(value)).toEqual(problemBody('forbidden_permission', detail));
  });
});
