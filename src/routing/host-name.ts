/** `Host` without port, lower-case. */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  if (host.charCodeAt(0) === 91 /* [ IPv6 */) return host.slice(0, host.indexOf(']') + 1).toLowerCase();
  const colon = host.indexOf(':');
  const name = colon === -1 ? host : host.slice(0, colon);
  // `example.com.` is the same host as `example.com`.
  return (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
}
