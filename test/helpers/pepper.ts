/**
 * The one pepper every test hashes keys with: in-process keygates (startTestKeygate,
 * startAdminKeygate), spawned ones (childEnv sets KEYGATE_PEPPER), and the unit tests that
 * build a hasher or a session-token signer themselves.
 */
import { createKeyHasher } from '../../src/keys/hash.ts';

export const TEST_PEPPER = 'test-pepper-0123456789abcdef';

/** The key hasher keygate builds from TEST_PEPPER. */
export const testHasher = createKeyHasher(TEST_PEPPER);
