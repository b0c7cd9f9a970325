/**
 * The test ground's parts and which of them a run starts: DEFAULT_PARTS, or those `TESTGROUND_PARTS`
 * (comma-separated) names. Read by the global setup and by vitest.config.ts (a run
 * without the node leaves out the tests that need real pods).
 */
export type PartName = 'kube' | 'registry' | 'git' | 'svn' | 'node' | 'prometheus';

export const ALL_PARTS: readonly PartName[] = ['kube', 'registry', 'git', 'svn', 'node', 'prometheus'];

/**
 * The parts a run starts by default: all of them, the real node included. `TESTGROUND_PARTS` without `node` leaves it
 * out for a quicker local run (and DEPLOYER_TESTENV_NODE=0 keeps prepare.sh from building it).
 */
export const DEFAULT_PARTS: readonly PartName[] = ['kube', 'registry', 'git', 'svn', 'node', 'prometheus'];

/** The tests that need the `node` part (real pods). */
export const NODE_TESTS: readonly string[] = ['test/node/**/*.test.ts', 'test/ground/node.test.ts', 'test/monitoring/loop.test.ts'];

export function wantedParts(env: Readonly<Record<string, string | undefined>> = process.env): PartName[] {
  return (env['TESTGROUND_PARTS'] ?? DEFAULT_PARTS.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter((p): p is PartName => (ALL_PARTS as readonly string[]).includes(p));
}
