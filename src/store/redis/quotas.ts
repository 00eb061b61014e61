/**
 * Quotas on Redis: one script charges every budget of a request, all or none (scripts.ts
 * QUOTA_CHARGE), shared by every instance. A period's counter expires a day after the period
 * ends; credits live as long as the key (removed with nothing: a few bytes per key).
 */
import type { QuotaAnswer, QuotaCounter } from '../../limits/quota.ts';
import { quotaAnswer, quotaKey, type QuotaDecision, type QuotaStore } from '../quota-store.ts';
import type { Commands } from './commands.ts';
import * as scripts from './scripts.ts';

export class RedisQuotas implements QuotaStore {
  readonly #redis: Commands;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  #key(counter: QuotaCounter): string {
    return `${this.#redis.keys.prefix}${counter.quota.kind === 'period' ? 'q' : 'cr'}:${quotaKey(counter)}`;
  }

  static #args(counter: QuotaCounter): (string | number)[] {
    const { quota, period } = counter;
    return [quota.kind, quota.amount, period?.id ?? '', period?.endsAt ?? 0, quota.kind === 'credits' && quota.unit !== null ? '1' : '0'];
  }

  async chargeQuotas(counters: readonly QuotaCounter[], weight: number): Promise<QuotaDecision> {
    const args: (string | number)[] = [weight];
    for (const c of counters) args.push(...RedisQuotas.#args(c));
    const reply = (await this.#redis.script(scripts.QUOTA_CHARGE, counters.map((c) => this.#key(c)), args)) as unknown[];
    const spent = Number(reply[0]);
    return { exhausted: spent - 1, answers: counters.map((c, i) => quotaAnswer(c, Number(reply[i + 1]), weight, spent === 0)) };
  }

  async quotaStatus(counter: QuotaCounter): Promise<QuotaAnswer> {
    return this.topUpQuota(counter, 0);
  }

  async topUpQuota(counter: QuotaCounter, amount: number): Promise<QuotaAnswer> {
    const left = Number(await this.#redis.script(scripts.QUOTA_TOP_UP, [this.#key(counter)], [...RedisQuotas.#args(counter), amount]));
    return quotaAnswer(counter, left, 0, false);
  }
}
