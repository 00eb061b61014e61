/**
 * Mail for the notification tests: an SMTP server that keeps every message, and reading
 * what nodemailer sent as a mail client would, to assert on subjects and bodies.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface Mail {
  raw: string;
  from: string;
  to: string[];
  /** Who logged in, when the server asks for a login. */
  user: string | undefined;
}

export interface MailServer {
  port: number;
  close(): Promise<void>;
}

/**
 * An SMTP server on a free loopback port (no TLS) that pushes every message into `into`
 * and refuses recipients nobody@… (550). With `password`, it takes a login (PLAIN or
 * LOGIN) as user keygate with that password only; without, no login.
 */
export async function startMailServer(into: Mail[], password?: string): Promise<MailServer> {
  const login: SMTPServerOptions =
    password === undefined
      ? { authOptional: true }
      : {
          allowInsecureAuth: true,
          authMethods: ['PLAIN', 'LOGIN'],
          onAuth(auth, _session, callback) {
            if (auth.username === 'keygate' && auth.password === password) callback(null, { user: 'keygate' });
            else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
          },
        };
  const smtp = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    ...login,
    logger: false,
    closeTimeout: 500,
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('nobody@')) callback(Object.assign(new Error('No such mailbox'), { responseCode: 550 }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        into.push({
          raw: Buffer.concat(chunks).toString('utf8'),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (smtp.server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => smtp.close(() => resolve())),
  };
}

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
