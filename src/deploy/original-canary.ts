import type { LiveDeployment } from '../core/types.js';
import type { KubeObject } from '../core/types.js';
import { asRecord } from './pod-template.js';

/**
 * The canaries the original deployer (the thesis' own) left behind. It wrote no ownership annotation; its canary of
 * Deployment `X` was a Deployment named exactly `X-canary` in X's namespace whose pod template labels were X's selector
 * labels plus `track=canary`. A stable deploy removes such a canary like its own, so that after the switch to this
 * deployer never three versions run. Anything else without an annotation (a Deployment that only has the name) is
 * never touched.
 */

/** The label the original deployer put on its canaries' pods. */
const ORIGINAL_TRACK_LABEL = 'track';

/** Whether `canary` (live, with no ownership annotation) is the original deployer's canary of the `stable` manifest. */
export function isOriginalCanary(canary: LiveDeployment, stable: KubeObject): boolean {
  if (canary.name !== `${stable.metadata.name}-canary` || canary.namespace !== stable.metadata.namespace) return false;
  const selector = asRecord(asRecord(asRecord(stable['spec'])?.['selector'])?.['matchLabels']);
  if (selector === undefined) return false;
  const pods = canary.podLabels ?? {};
  const expected: Record<string, unknown> = { ...selector, [ORIGINAL_TRACK_LABEL]: 'canary' };
  const keys = Object.keys(expected);
  return keys.length === Object.keys(pods).length && keys.every((k) => Object.hasOwn(pods, k) && pods[k] === expected[k]);
}
