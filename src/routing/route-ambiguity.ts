/**
 * Paths that an upstream may read as a different route than keygate does. keygate routes
 * on the path as written, case-sensitively (RFC 3986); but servlet containers drop `;`
 * parameters (`/admin;x/users` is `/admin/users` to Tomcat and Spring) and some servers
 * (IIS, case-insensitive file systems, Spring with case-insensitive matching) ignore letter
 * case (`/ADMIN/users`). Behind a public or weaker catch-all route, either reading would
 * reach a protected prefix without its policy. Such a request is refused (400) when — and
 * only when — one of those readings selects a different route than the literal path; a
 * `;jsessionid=…` at the end of a path, or upper case letters anywhere a route boundary is
 * not at stake, change nothing.
 */
import type { Route, Router } from './router.ts';
import { withoutPathParams } from './normalize-path.ts';

const UPPER = /[A-Z]/;
const PARAMS = /;|%3[Bb]/;

/** A character code with A-Z folded to a-z. */
const fold = (c: number): number => (c >= 65 && c <= 90 ? c + 32 : c);

/** prefixMatches, ignoring letter case — compared code by code, so the scan allocates nothing. */
function foldedPrefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  const n = prefix.length;
  if (path.length < n) return false;
  for (let i = 0; i < n; i++) if (fold(path.charCodeAt(i)) !== fold(prefix.charCodeAt(i))) return false;
  return path.length === n || path.charCodeAt(n) === 47;
}

/** Whether a route prefix has upper-case letters (then a lower-case path can be folded onto it too). */
const upperPrefixes = new WeakMap<Router, boolean>();

function hasUpperPrefix(router: Router): boolean {
  let upper = upperPrefixes.get(router);
  if (upper === undefined) upperPrefixes.set(router, (upper = router.routes.some((r) => UPPER.test(r.pathPrefix))));
  return upper;
}

/** True when a parameter-stripping or case-folding reading of `path` selects another route than `route`. */
export function misleadingPath(router: Router, host: string | undefined, path: string, route: Route): boolean {
  const params = PARAMS.test(path);
  const upper = UPPER.test(path) || hasUpperPrefix(router);
  if (!params && !upper) return false;
  // A segment that was only a parameter leaves `//`, which servers merge.
  const stripped = params ? withoutPathParams(path).replace(/\/{2,}/g, '/') : path;
  if (params && router.match(host, stripped) !== route) return true;
  return router.match(host, stripped, foldedPrefixMatches) !== route;
}
