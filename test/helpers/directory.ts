/** A users-and-groups directory that has been "read from the store" (ready), with these config groups and, optionally, users and tenant groups. */
import type { DirectorySnapshot } from '../../src/store/directory-store.ts';
import { Directory, type PermissionGroups } from '../../src/users/directory.ts';

export function testDirectory(groups: PermissionGroups = {}, snapshot: DirectorySnapshot = { users: [], groups: [] }): Directory {
  return new Directory(groups, snapshot);
}
