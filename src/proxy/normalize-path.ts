/**
 * Request-target normalisation, so the path a route is chosen by is exactly the path the
 * upstream receives. `/mcp/../admin`, `/mcp/%2e%2e/admin` and `//admin` all become
 * `/admin`; an encoded `/` or `\` (`%2f`, `%5c`), a raw backslash, a NUL, or a dot segment
 * with a `;` parameter (`..;`) is refused, because upstreams disagree on what they mean.
 */
export interface NormalizedTarget {
  path: string;
  /** Including the leading `?`, or ''. */
  query: string;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

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

/** Returns null for a target that must be refused (400). */
export function normalizeTarget(url: string): NormalizedTarget | null {
  if (url.charCodeAt(0) !== 47) {
    // Absolute-form (a client talking to us as a forward proxy): keep only path and query.
    if (!/^https?:\/\//i.test(url)) return null;
    const slash = url.indexOf('/', url.indexOf('//') + 2);
    url = slash === -1 ? '/' : url.slice(slash);
  }
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  if (!needsWork(path)) return { path, query };
  const decoded = decodeUnreserved(path);
  if (decoded === null) return null;
  const normalized = removeDotSegments(decoded);
  return normalized === null ? null : { path: normalized, query };
}
