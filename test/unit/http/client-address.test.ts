import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { addressKey, clientAddress } from '../../../src/http/client-address.ts';

const req = (remoteAddress: string, xff?: string | string[]) => ({ socket: { remoteAddress }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('addressKey', () => {
  it('keeps IPv4 addresses, unwraps IPv4-mapped IPv6', () => {
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
  });

  it('counts IPv6 by /64, however the address is written', () => {
    const key = '2001:db8:0:1::/64';
    for (const a of ['2001:db8:0:1::1', '2001:0db8:0000:0001:ffff:ffff:ffff:ffff', '2001:DB8:0:1:1:2:3:4', '2001:db8::1:0:0:0:5', '2001:db8:0:1::9%eth0']) {
      expect(addressKey(a), a).toBe(key);
    }
    expect(addressKey('2001:db8:0:2::1')).toBe('2001:db8:0:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::')).toBe('0:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });
});

describe('clientAddress', () => {
  it('is the socket address unless the client is trusted', () => {
    expect(clientAddress(req('127.0.0.5', '198.51.100.1'), false)).toBe('127.0.0.5');
  });

  it('behind a trusted balancer: the right-most X-Forwarded-For entry, if it is an address', () => {
    expect(clientAddress(req('10.0.0.1', '198.51.100.1, 203.0.113.9'), true)).toBe('203.0.113.9');
    expect(clientAddress(req('10.0.0.1', ['198.51.100.1', '203.0.113.7 ']), true)).toBe('203.0.113.7');
    expect(clientAddress(req('10.0.0.1', '198.51.100.1, not-an-address'), true)).toBe('10.0.0.1');
    expect(clientAddress(req('10.0.0.1'), true)).toBe('10.0.0.1');
    expect(clientAddress(req('10.0.0.1', '2001:db8:5:6::1'), true)).toBe('2001:db8:5:6::/64');
  });
});
