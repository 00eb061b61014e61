/**
 * Small statistics for the timing test: quantiles, the Mann-Whitney rank statistic as an
 * effect size (the probability that a value from one sample exceeds one from the other:
 * 0.5 when the distributions are the same), and a permutation test on the difference of
 * medians. No assumptions about the shape of latency distributions (they are skewed).
 */

export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** P(a > b) + P(a = b) / 2 for a random a from `a` and b from `b` (Vargha-Delaney A). */
export function probabilityOfSuperiority(a: readonly number[], b: readonly number[]): number {
  const all = [...a.map((v) => ({ v, from: 0 })), ...b.map((v) => ({ v, from: 1 }))].sort((x, y) => x.v - y.v);
  // Mid-ranks for ties.
  const ranks = new Array<number>(all.length);
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    for (let k = i; k <= j; k++) ranks[k] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let rankSumA = 0;
  all.forEach((x, i) => {
    if (x.from === 0) rankSumA += ranks[i]!;
  });
  const u = rankSumA - (a.length * (a.length + 1)) / 2;
  return u / (a.length * b.length);
}

/** Two-sided permutation p-value for |median(a) - median(b)|, with a seeded shuffle. */
export function permutationP(a: readonly number[], b: readonly number[], rounds = 1000, seed = 1): number {
  let state = seed >>> 0;
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const observed = Math.abs(median(a) - median(b));
  const pool = [...a, ...b];
  let extreme = 0;
  for (let r = 0; r < rounds; r++) {
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    if (Math.abs(median(pool.slice(0, a.length)) - median(pool.slice(a.length))) >= observed) extreme++;
  }
  return (extreme + 1) / (rounds + 1);
}
