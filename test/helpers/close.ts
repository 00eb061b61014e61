/** Tearing down what a test file started. */

type Closable = { stop(): unknown } | { close(): unknown } | undefined | null;

/**
 * Stops (or, without stop(), closes) each of `things` in order, waiting for each; those
 * never started (undefined) are skipped. For afterAll.
 */
export async function closeAll(...things: Closable[]): Promise<void> {
  for (const thing of things) {
    if (!thing) continue;
    if ('stop' in thing) await thing.stop();
    else await thing.close();
  }
}
