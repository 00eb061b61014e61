/**
 * The request pipeline: an ordered list of named stages over one Exchange, the same for
 * every transport (README, "How a request is handled", names them in this order):
 *
 *   method → target → [metadata] → match → origin → [body limit] → credential → admit
 *   → [webhook signature] → secret → rewrite → forward (HTTP) | connect (WebSocket)
 *
 * A stage returns nothing to hand the exchange on, a Refusal to have the transport answer
 * with it, ANSWERED when it answered itself (a CORS preflight, a metadata document), or a
 * Promise of one of those when it must wait (a store lookup, a body). Only a Promise costs
 * a closure; the cached, accepted path runs straight through the loop.
 *
 * The stages after `match` depend on the route: each says whether it `applies` to a route,
 * and the list for a route is worked out the first time the route is seen (a stage that does
 * not apply to a route costs that route nothing per request).
 *
 * @example
 *   const pipeline = new Pipeline([methodStage, targetStage, matchStage(routing)], [originStage, …, forwardStage], ends);
 *   pipeline.run(new HttpExchange(req, res, performance.now()));
 */
import type { Refusal } from '../auth/refusals.ts';
import type { Route } from '../routing/router.ts';
import type { Exchange } from './exchange.ts';

/** A stage answered the client itself: nothing further runs. */
export const ANSWERED: unique symbol = Symbol('keygate.answered');

export type StageOutcome = Refusal | typeof ANSWERED | undefined;
export type StageResult = StageOutcome | Promise<StageOutcome>;

/**
 * `next(value)` now if `value` is already there, or once its Promise settles: how a stage
 * that may have to wait stays synchronous (and closure-free) when it does not.
 */
export function settle<T>(value: T | Promise<T>, next: (value: T) => StageOutcome): StageResult {
  return value instanceof Promise ? value.then(next) : next(value);
}

export interface Stage<E extends Exchange> {
  readonly name: string;
  run(exchange: E): StageResult;
  /** Route stages: whether it has anything to do on this route (left out: always). */
  applies?(route: Route): boolean;
}

/** What the transport does with the pipeline's end results. */
export interface PipelineEnds<E extends Exchange> {
  refuse(exchange: E, refusal: Refusal): void;
  /** keygate itself failed (a bug, or a dependency that threw): answer 500, log. */
  failed(exchange: E, error: unknown): void;
}

export class Pipeline<E extends Exchange> {
  /** Every stage, in order (for the docs and the tests). */
  readonly names: readonly string[];
  readonly #front: readonly Stage<E>[];
  readonly #routeStages: readonly Stage<E>[];
  readonly #ends: PipelineEnds<E>;
  readonly #byRoute = new WeakMap<Route, readonly Stage<E>[]>();

  /**
   * @param front stages that run before a route is known; the last of them sets `exchange.route`
   * @param routeStages stages that run once it is, in order
   */
  constructor(front: readonly Stage<E>[], routeStages: readonly Stage<E>[], ends: PipelineEnds<E>) {
    this.#front = front;
    this.#routeStages = routeStages;
    this.#ends = ends;
    this.names = [...front, ...routeStages].map((stage) => stage.name);
  }

  run(exchange: E): void {
    this.#run(exchange, 0);
  }

  /** The stages that apply to `route`, in order. */
  stagesFor(route: Route): readonly Stage<E>[] {
    let stages = this.#byRoute.get(route);
    if (stages === undefined) {
      stages = this.#routeStages.filter((stage) => stage.applies === undefined || stage.applies(route));
      this.#byRoute.set(route, stages);
    }
    return stages;
  }

  /** Runs from `at`: front stages are 0 … front.length - 1, then the route's stages. */
  #run(exchange: E, at: number): void {
    try {
      const front = this.#front;
      let i = at;
      for (; i < front.length; i++) {
        const result = front[i]!.run(exchange);
        if (result !== undefined) return this.#stop(exchange, result, i);
      }
      const stages = this.stagesFor(exchange.route!);
      for (let j = i - front.length; j < stages.length; j++) {
        const result = stages[j]!.run(exchange);
        if (result !== undefined) return this.#stop(exchange, result, front.length + j);
      }
    } catch (error) {
      this.#ends.failed(exchange, error);
    }
  }

  #stop(exchange: E, result: Refusal | typeof ANSWERED | Promise<StageOutcome>, at: number): void {
    if (result === ANSWERED) return;
    if (!(result instanceof Promise)) return this.#ends.refuse(exchange, result);
    result.then(
      (settled) => {
        if (exchange.gone) return;
        if (settled === undefined) this.#run(exchange, at + 1);
        else if (settled !== ANSWERED) this.#ends.refuse(exchange, settled);
      },
      (error: unknown) => this.#ends.failed(exchange, error),
    );
  }
}
