/**
 * The routing state in force: the route table and the header policy, replaced together as one
 * value by a reload (reload.ts) — a request reads `current.state` once per stage that needs
 * it, and a request already matched keeps the route it was matched to.
 */
import type { Router } from '../routing/router.ts';
import type { HeaderPolicy } from './rewrite.ts';

export interface RouteState {
  readonly router: Router;
  readonly headers: HeaderPolicy;
}

export class Current {
  state: RouteState;

  constructor(state: RouteState) {
    this.state = state;
  }

  /** Swaps in a whole new state at once (config reload). */
  replace(next: RouteState): void {
    this.state = next;
  }
}
