/** Reading what nodemailer sent, as a mail client would, to assert on subjects and bodies. */

/** Decodes what nodemailer encodes: RFC 2047 header words, quoted-printable or base64 bodies. */
export function decodeMail(raw: string): { headers: Map<string, string>; subject: string; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const qBytes = (text: string, underscoreIsSpace: boolean): Buffer => {
    const bytes: number[] = [];
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
        bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
      } else if (c === '_' && underscoreIsSpace) bytes.push(32);
      else bytes.push(...Buffer.from(c, 'utf8'));
    }
    return Buffer.from(bytes);
  };
  const subject = (headers.get('subject') ?? '')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _charset: string, enc: string, text: string) =>
      (enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : qBytes(text, true)).toString('utf8'),
    );
  const body = raw.slice(split + 4);
  const cte = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const text =
    cte === 'quoted-printable' ? qBytes(body.replace(/=\r\n/g, ''), false).toString('utf8') : cte === 'base64' ? Buffer.from(body, 'base64').toString('utf8') : body;
  return { headers, subject, text: text.replace(/\r\n/g, '\n') };
}
