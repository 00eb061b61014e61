/** The problems a config is refused with, for the config schema tests (fails the test if it is accepted). */
import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

export function configProblems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, 'test.yaml', env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('test.yaml');
    return (error as ConfigError).problems;
  }
  throw new Error('the config was accepted');
}
