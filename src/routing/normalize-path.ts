/**
 * Request-target normalisation, so the path a route is chosen by is exactly the path the
 * upstream receives. `/mcp/../admin`, `/mcp/%2e%2e/admin` and `//admin` all become
 * `/admin`; an encoded `/` or `\` (`%2f`, `%5c`), a raw backslash, a NUL, a dot segment
 * with a `;` parameter (`..;`), or a double-encoded dot, separator, NUL or `%` (`%252e`) is
 * refused, because upstreams disagree on what they mean.
 */
export interface NormalizedTarget {
  path: string;
  /** Including the leading `?`, or ''. */
  query: string;
  /** The authority of an absolute-form target (`GET http://host:port/x`): it replaces Host (RFC 9112 §3.2.2). */
  authority?: string;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const DOUBLE_ENCODED = /^(2[EeFf5]|5[Cc]|00)$/;

function needsWork(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */ || c === 92 /* \ */) return true;
    if (c === 47 /* / */) {
      const next = path.charCodeAt(i + 1);
      if (next === 47 || next === 46 /* . */) return true;
    }
  }
  return false;
}

/** Decodes %XX of unreserved characters; refuses encodings that would change segmenting. */
function decodeUnreserved(path: string): string | null {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '\\') return null;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    const code = parseInt(hex, 16);
    if (code === 0x2f || code === 0x5c || code === 0) return null;
    // Double encoding (%252e, %252f, %255c, %2500, %2525): an upstream that decodes twice
    // would read a dot segment or separator keygate never saw.
    if (code === 0x25 && DOUBLE_ENCODED.test(path.slice(i + 3, i + 5))) return null;
    const decoded = String.fromCharCode(code);
    out += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** Null when a segment is a dot segment with a `;` parameter (`..;x`), which Java servlet containers treat as `..`. */
function removeDotSegments(path: string): string | null {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segments[i]!;
    if (s.startsWith('.;') || s.startsWith('..;')) return null;
    if (s === '..') out.pop();
    else if (s !== '.' && s !== '') out.push(s);
    // A trailing '/', '.' or '..' leaves the path ending in '/'.
    if (i === last && (s === '' || s === '.' || s === '..') && out.length) out.push('');
  }
  return `/${out.join('/')}`;
}

/** An absolute-form authority keygate accepts: a host name, IPv4 or [IPv6], optional port; no userinfo. */
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=-]+)(:[0-9]{0,5})?$/;

/** Returns null for a target that must be refused (400). */
export function normalizeTarget(url: string): NormalizedTarget | null {
  let authority: string | undefined;
  if (url.charCodeAt(0) !== 47) {
    // Absolute-form (a client talking to us as a forward proxy): its authority is the host
    // the request is for, and the rest is the path and query.
    if (!/^https?:\/\//i.test(url)) return null;
    const start = url.indexOf('//') + 2;
    let end = start;
    while (end < url.length && url[end] !== '/' && url[end] !== '?' && url[end] !== '#') end++;
    authority = url.slice(start, end);
    if (!AUTHORITY.test(authority)) return null;
    url = url[end] === '/' ? url.slice(end) : `/${url.slice(end)}`;
  }
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  const target: NormalizedTarget = { path, query };
  if (authority !== undefined) target.authority = authority;
  if (!needsWork(path)) return target;
  const decoded = decodeUnreserved(path);
  if (decoded === null) return null;
  const normalized = removeDotSegments(decoded);
  if (normalized === null) return null;
  target.path = normalized;
  return target;
}

/**
 * The path without `;` parameters (and their `%3B` spelling) in any segment: how Java
 * servlet containers and other matrix-parameter-aware upstreams read `/admin;x=1/y` (as
 * `/admin/y`).
 */
export function withoutPathParams(path: string): string {
  return path.replace(/(;|%3[Bb])[^/]*/g, '');
}
