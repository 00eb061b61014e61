/**
 * The `forwardAuth:` config section (src/config/forward-auth.ts): its defaults (loopback,
 * 8082, loopback proxies only) and refusals that name the field.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { isAddressOrRange } from '../../../src/config/forward-auth.ts';
import { configProblems } from '../../helpers/config.ts';

describe('forwardAuth', () => {
  it('is off unless present; present, it defaults to a loopback listener trusting loopback only', () => {
    expect(parseConfig({}, 'test.yaml', {}).forwardAuth).toBeUndefined();
    expect(parseConfig({ forwardAuth: {} }, 'test.yaml', {}).forwardAuth).toEqual({ host: '127.0.0.1', port: 8082, trustedProxies: ['127.0.0.1', '::1'] });
  });

  it('takes addresses and CIDR ranges, IPv4 and IPv6', () => {
    for (const ok of ['10.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '2001:db8::/128']) expect(isAddressOrRange(ok), ok).toBe(true);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'localhost', '10.0.0/8', '10.0.0.0/', '10.0.0.0/x', '']) expect(isAddressOrRange(bad), bad).toBe(false);
  });

  it('refuses bad values naming the field', () => {
    expect(configProblems({ forwardAuth: { trustedProxies: ['proxy.internal'] } }).join('\n')).toMatch(/forwardAuth\.trustedProxies\[0\]: .*IP address or a CIDR range/);
    expect(configProblems({ forwardAuth: { trustedProxies: [] } }).join('\n')).toMatch(/forwardAuth\.trustedProxies.*at least one/);
    expect(configProblems({ forwardAuth: { port: 70000 } }).join('\n')).toMatch(/forwardAuth\.port.*0-65535/);
    expect(configProblems({ forwardAuth: { path: '/auth' } }).join('\n')).toMatch(/forwardAuth/);
    expect(configProblems({ listen: { host: '127.0.0.1', port: 9000 }, forwardAuth: { host: '127.0.0.1', port: 9000 } }).join('\n')).toMatch(/forwardAuth\.port.*must differ from listen\.port/);
  });
});
