/**
 * The test ground's parts and which of them a run starts: DEFAULT_PARTS, or those `TESTGROUND_PARTS`
 * (comma-separated) names. Read by the global setup and by vitest.config.ts (a run
 * without the node leaves out the tests that need real pods).
 */
export type PartName = 'kube' | 'registry' | 'git' | 'svn' | 'node' | 'prometheus';

export const ALL_PARTS: readonly PartName[] = ['kube', 'registry', 'git', 'svn', 'node', 'prometheus'];

/**
 * The parts a run starts by default. The node is opt-in for now (`TESTGROUND_PARTS=kube,registry,git,svn,node`):
 * it has not yet had a passing run on a fresh machine, and a default that fails would stop every full run.
 */
export const DEFAULT_PARTS: readonly PartName[] = ['kube', 'registry', 'git', 'svn', 'prometheus'];

/** The tests that need the `node` part (real pods). */
export const NODE_TESTS: readonly string[] = ['test/node/**/*.test.ts', 'test/ground/node.test.ts'];

export function wantedParts(env: Readonly<Record<string, string | undefined>> = process.env): PartName[] {
  return (env['TESTGROUND_PARTS'] ?? DEFAULT_PARTS.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter((p): p is PartName => (ALL_PARTS as readonly string[]).includes(p));
}
