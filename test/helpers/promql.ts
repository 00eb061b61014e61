/**
 * Checks the PromQL in deploy/ (Grafana dashboard, Prometheus rules) against what a running
 * keygate actually exports: every series selector must name a series that /metrics shows,
 * with the labels it matches on and the literal values it matches; every `by (…)` label must
 * be on one of the expression's series. Not a PromQL parser: a tokenizer that knows
 * selectors, matchers, function calls, grouping clauses and range brackets, which is all the
 * deploy files use (a unit test pins what it extracts).
 *
 * Usage:
 *   const exported = parseExposition(await (await fetch(`${adminUrl}/metrics`)).text());
 *   expect(checkExpression('rate(keygate_requests_total{outcome="ok"}[5m])', exported)).toEqual([]);
 */

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
}

export interface ExpressionParts {
  selectors: Selector[];
  /** Labels named in by / without / on / ignoring / group_left / group_right lists. */
  groupingLabels: string[];
}

/** Series name → label name → the values seen. */
export type Exposition = Map<string, Map<string, Set<string>>>;

/** Labels Prometheus adds to every scraped series (the target's), never in /metrics itself. */
export const TARGET_LABELS: ReadonlySet<string> = new Set(['job', 'instance']);

/**
 * Series Prometheus makes itself for each target: the only names the deploy files may use
 * that keygate does not export. `up` is how readiness-adjacent "is it there" shows.
 */
export const PROMETHEUS_SERIES: ReadonlySet<string> = new Set(['up']);

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

type Token = { kind: 'ident' | 'string' | 'number' | 'punct'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '[') {
      // A range or subquery ([5m], [$__rate_interval], [1h:5m]): no names inside.
      const end = expr.indexOf(']', i);
      if (end < 0) throw new Error(`unclosed [ in ${expr}`);
      i = end + 1;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let text = '';
      while (j < expr.length && expr[j] !== c) {
        if (expr[j] === '\\' && c !== '`') {
          text += expr[j + 1] ?? '';
          j += 2;
        } else text += expr[j++];
      }
      if (j >= expr.length) throw new Error(`unclosed string in ${expr}`);
      tokens.push({ kind: 'string', text });
      i = j + 1;
    } else if (/[0-9.]/.test(c)) {
      const m = /^[0-9.][0-9a-zA-Z_.+-]*/.exec(expr.slice(i))!;
      // 1e-3 keeps its sign; a trailing binary operator does not belong to the number.
      const text = m[0].replace(/(?<![eE])[+-].*$/, '');
      tokens.push({ kind: 'number', text });
      i += text.length;
    } else if (c === '$') {
      // A Grafana variable outside a string ($__rate_interval is always inside [ ]).
      const m = /^\$\{?\w+\}?/.exec(expr.slice(i))!;
      tokens.push({ kind: 'string', text: m[0] });
      i += m[0].length;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else {
      const two = expr.slice(i, i + 2);
      const text = ['=~', '!~', '!=', '==', '>=', '<='].includes(two) ? two : c;
      tokens.push({ kind: 'punct', text });
      i += text.length;
    }
  }
  return tokens;
}

/** The series selectors and grouping labels of one PromQL expression. */
export function expressionParts(expr: string): ExpressionParts {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const at = (k: number) => tokens[k];
  let i = 0;
  const readMatchers = (): Matcher[] => {
    // tokens[i] is '{'
    const matchers: Matcher[] = [];
    i++;
    while (at(i) && at(i)!.text !== '}') {
      const label = at(i);
      const op = at(i + 1);
      const value = at(i + 2);
      if (label?.kind !== 'ident' || op?.kind !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
        throw new Error(`cannot read the matchers of ${expr} at "${label?.text ?? ''}"`);
      }
      matchers.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
      i += 3;
      if (at(i)?.text === ',') i++;
    }
    if (!at(i)) throw new Error(`unclosed { in ${expr}`);
    i++;
    return matchers;
  };
  while (i < tokens.length) {
    const t = tokens[i]!;
    if (t.kind === 'ident' && GROUPING.has(t.text.toLowerCase())) {
      i++;
      if (at(i)?.text === '(') {
        i++;
        while (at(i) && at(i)!.text !== ')') {
          if (at(i)!.kind === 'ident') groupingLabels.push(at(i)!.text);
          i++;
        }
        i++;
      }
    } else if (t.kind === 'ident' && (at(i + 1)?.text === '(' || (AGGREGATIONS.has(t.text) && GROUPING.has(at(i + 1)?.text ?? '')))) {
      i++; // a function or an aggregation (`sum by (x) (…)` too): its arguments are read as they come
    } else if (t.kind === 'ident' && KEYWORDS.has(t.text.toLowerCase())) {
      i++;
    } else if (t.kind === 'ident') {
      i++;
      selectors.push({ metric: t.text, matchers: at(i)?.text === '{' ? readMatchers() : [] });
    } else if (t.text === '{') {
      throw new Error(`a selector without a metric name in ${expr}: name the metric`);
    } else {
      i++;
    }
  }
  return { selectors, groupingLabels };
}

/** /metrics text → series name → label → values (HELP/TYPE lines are not series). */
export function parseExposition(text: string): Exposition {
  const out: Exposition = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    let labels = out.get(m[1]!);
    if (labels === undefined) out.set(m[1]!, (labels = new Map()));
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      let values = labels.get(l[1]!);
      if (values === undefined) labels.set(l[1]!, (values = new Set()));
      values.add(l[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1'));
    }
  }
  return out;
}

/** The literal values a matcher names: itself for =, each alternative of a plain a|b|c regex; none for variables or real regexes. */
function literalValues(m: Matcher): string[] {
  if (m.value.includes('$')) return [];
  if (m.op === '=') return [m.value];
  if (m.op === '=~' && /^[\w/:. -]+(\|[\w/:. -]+)*$/.test(m.value)) return m.value.split('|');
  return [];
}

/** What is wrong with `expr` against `exported`: one line per problem, empty when it is fine. */
export function checkExpression(expr: string, exported: Exposition): string[] {
  const problems: string[] = [];
  let parts: ExpressionParts;
  try {
    parts = expressionParts(expr);
  } catch (error) {
    return [(error as Error).message];
  }
  if (parts.selectors.length === 0) problems.push(`no series selector in ${expr}`);
  const labelsHere = new Set<string>(TARGET_LABELS);
  for (const { metric, matchers } of parts.selectors) {
    if (PROMETHEUS_SERIES.has(metric)) {
      for (const m of matchers) if (!TARGET_LABELS.has(m.label)) problems.push(`${metric} (Prometheus's own) has no label ${m.label}`);
      continue;
    }
    const series = exported.get(metric);
    if (series === undefined) {
      problems.push(`${metric} is not in keygate's /metrics`);
      continue;
    }
    for (const label of series.keys()) labelsHere.add(label);
    for (const m of matchers) {
      if (TARGET_LABELS.has(m.label)) continue;
      const values = series.get(m.label);
      if (values === undefined) {
        problems.push(`${metric} has no label ${m.label}`);
        continue;
      }
      for (const v of literalValues(m)) if (!values.has(v)) problems.push(`${metric}{${m.label}="${v}"}: no such series (values seen: ${[...values].join(', ')})`);
    }
  }
  for (const label of parts.groupingLabels) if (!labelsHere.has(label)) problems.push(`grouping label ${label} is on none of the series of ${expr}`);
  return problems;
}
