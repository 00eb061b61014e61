/**
 * Who a client is, for the per-client limits (connections, failed authentications): an
 * address key, not an identity. IPv4 addresses count one by one; IPv6 addresses by their
 * /64 network, because one host is routinely given a whole /64 and could otherwise present
 * 2^64 "different" clients. IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack
 * listener reports) is the IPv4 address.
 *
 * Behind a trusted load balancer (`forwarded.trustClient: true`) the client is the right-most
 * `X-Forwarded-For` entry: the one the balancer appended. Everything to its left was sent by
 * the client itself and proves nothing.
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** The /64 of an IPv6 address, as 4 hex groups: `2001:db8:0:1::/64`. */
function ipv6Network(address: string): string {
  const zone = address.indexOf('%');
  const text = zone === -1 ? address : address.slice(0, zone);
  const double = text.indexOf('::');
  let groups: string[];
  if (double === -1) {
    groups = text.split(':');
  } else {
    const head = text.slice(0, double) === '' ? [] : text.slice(0, double).split(':');
    const tail = text.slice(double + 2) === '' ? [] : text.slice(double + 2).split(':');
    // An embedded IPv4 tail (::1.2.3.4) takes two groups.
    const tailGroups = tail.length > 0 && tail[tail.length - 1]!.includes('.') ? tail.length + 1 : tail.length;
    groups = [...head, ...Array<string>(Math.max(0, 8 - head.length - tailGroups)).fill('0'), ...tail];
  }
  return `${groups
    .slice(0, 4)
    .map((g) => (g.replace(/^0+(?=.)/, '') || '0').toLowerCase())
    .join(':')}::/64`;
}

/** The key a client address is counted under (see the module comment). */
export function addressKey(address: string): string {
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  if (isIPv6(address)) return ipv6Network(address);
  return address;
}

/** The right-most entry of an X-Forwarded-For value, if it is an IP address. */
function lastForwarded(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[value.length - 1]! : value;
  const entry = text.slice(text.lastIndexOf(',') + 1).trim();
  return isIPv4(entry) || isIPv6(entry) ? entry : undefined;
}

const kAddressKey = Symbol('keygate.addressKey');
type KeyedSocket = IncomingMessage['socket'] & { [kAddressKey]?: string };

/** The address key of the client that sent `req`: the socket's is worked out once per connection. */
export function clientAddress(req: IncomingMessage, trustForwarded: boolean): string {
  const forwarded = trustForwarded ? lastForwarded(req.headers['x-forwarded-for']) : undefined;
  if (forwarded !== undefined) return addressKey(forwarded);
  const socket = req.socket as KeyedSocket;
  return (socket[kAddressKey] ??= addressKey(socket.remoteAddress ?? ''));
}
