/** The `leakReports:` config section (src/config/leak-reports.ts): off when absent, defaults, and errors naming the field. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config.ts';

describe('leakReports config', () => {
  it('is off when absent', () => {
    expect(parseConfig({}, 'test.yaml').leakReports).toBeUndefined();
    expect(parseConfig({ leakReports: {} }, 'test.yaml').leakReports).toEqual({});
  });

  it('github: {} takes the defaults', () => {
    expect(parseConfig({ leakReports: { github: {} } }, 'test.yaml').leakReports).toEqual({
      github: {
        path: '/.well-known/keygate/github-secret-scanning',
        keysUrl: 'https://api.github.com/meta/public_keys/secret_scanning',
        action: 'revoke',
        maxBodyBytes: 1_048_576,
        refetchCooldownMs: 300_000,
      },
    });
    expect(parseConfig({ leakReports: { github: { action: 'notify', path: '/leaks/github' } } }, 'test.yaml').leakReports?.github).toMatchObject({ action: 'notify', path: '/leaks/github' });
  });

  it('names the field that is wrong', () => {
    expect(configProblems({ leakReports: { github: { action: 'delete' } } })).toEqual(['leakReports.github.action: must be one of revoke, notify']);
    for (const path of ['leaks', '/leaks?x=1', '/leaks//github', '/leaks/../admin', '/', '/a b']) {
      expect(configProblems({ leakReports: { github: { path } } })[0], path).toMatch(/^leakReports\.github\.path: /);
    }
    expect(configProblems({ leakReports: { github: { keysUrl: 'ftp://example.com/keys' } } })).toEqual(['leakReports.github.keysUrl: must be an http:// or https:// URL']);
    expect(configProblems({ leakReports: { github: { maxBodyBytes: 10 } } })).toEqual(['leakReports.github.maxBodyBytes: must be at least 1024']);
    expect(configProblems({ leakReports: { github: { refetchCooldownMs: -1 } } })).toEqual(['leakReports.github.refetchCooldownMs: must be 0 or more']);
    expect(configProblems({ leakReports: { gitlab: {} } })[0]).toMatch(/^leakReports/);
  });
});
