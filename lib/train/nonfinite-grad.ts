/** Which gradient went NaN or infinite, for the message of a diverged step. @internal */
import { findNonFiniteAsync } from '../ops/finite';
import type { Tensor } from '../tensor';

/** The first parameter (in `names` order) whose gradient holds NaN or an infinity, with the count. */
export async function firstNonFiniteGradient(names: readonly string[], grads: Record<string, Tensor>): Promise<{ name: string; count: number; size: number } | undefined> {
  const present = names.filter((n) => grads[n] !== undefined);
  const found = await findNonFiniteAsync(present.map((n) => grads[n]));
  const i = found.findIndex((r) => r.count > 0);
  return i < 0 ? undefined : { name: present[i], count: found[i].count, size: grads[present[i]].size };
}
