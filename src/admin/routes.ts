/**
 * What every admin API endpoint is made of: its method and path pattern, and a handler that
 * gets the authenticated caller and answers with a status and a JSON body. Each group of
 * endpoints is a file (keys in api.ts, secret-routes.ts, directory-routes.ts…); api.ts runs them.
 */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { formatIssues } from '../config/load.ts';
import { KeygateError } from '../http/problem.ts';
import type { Caller } from '../keys/service.ts';

export interface Context {
  caller: Caller;
  req: IncomingMessage;
  params: string[];
  query: URLSearchParams;
}

export type Result = { status: number; body: unknown };
export type Handler = (ctx: Context) => Promise<Result>;

/** The request does not match its schema: validation_failed, every issue named by its path (`body.name: …; query.limit: …`). */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = formatIssues(result.error).map((p) => (p.startsWith('(top level)') ? `${where}${p.slice(11)}` : `${where}.${p}`));
  throw new KeygateError('validation_failed', issues.join('; '), { field: issues[0]!.slice(0, issues[0]!.indexOf(':')) });
}

export const query = (ctx: Context) => Object.fromEntries(ctx.query);

export type AdminRoute = [method: string, path: RegExp, handler: Handler];
