import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

/**
 * The layering rule of eslint.config.js, tried on probe files that are not on disk (type-aware rules off for them:
 * the rule under test needs no types). A wrong import must fail lint, a right one must pass.
 */
const eslint = new ESLint({
  cwd: process.cwd(),
  overrideConfig: [{ files: ['**/layering-probe.ts'], ...tseslint.configs.disableTypeChecked }],
});

async function lint(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: file });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parser'}: ${m.message}`);
}

describe('layering (no-restricted-imports in eslint.config.js)', () => {
  it.each([
    ['src/kube/layering-probe.ts', "import { Deployer } from '../deploy/deployer.js';", 'src/kube may not import src/deploy'],
    ['src/source/layering-probe.ts', "import { buildApp } from '../app.js';\nimport { createHttpServer } from '../http/server.js';", 'src/source may not import src/http'],
    ['src/report/layering-probe.ts', "import type { DeployRequest } from '../deploy/types.js';", 'src/report may not import src/deploy'],
    ['src/deploy/layering-probe.ts', "import { registerRoutes } from '../http/routes.js';", 'src/deploy may not import src/http'],
    ['src/core/layering-probe.ts', "import { Kubernetes } from '../kube/kubernetes.js';", 'src/core may not import src/kube'],
    ['src/deploy/layering-probe.ts', "import { KubeClient } from '@kubernetes/client-node';", 'only src/kube may import @kubernetes/client-node'],
  ])('%s: %s fails', async (file, code, message) => {
    const messages = await lint(file, `${code}\nexport {};\n`);
    expect(messages).toEqual(expect.arrayContaining([expect.stringContaining(`no-restricted-imports: `)]));
    expect(messages.join('\n')).toContain(message);
  });

  it.each([
    ['src/deploy/layering-probe.ts', "import type { Source } from '../core/ports.js';\nimport { shortCommit } from '../core/util.js';"],
    ['src/kube/layering-probe.ts', "import type { KubeObject } from '../core/types.js';\nimport { KubeConfig } from '@kubernetes/client-node';"],
    ['src/http/layering-probe.ts', "import type { DeployService } from '../deploy/types.js';"],
  ])('%s: a permitted import passes', async (file, code) => {
    const messages = await lint(file, `${code}\nexport {};\n`);
    expect(messages.filter((m) => m.startsWith('no-restricted-imports') || m.startsWith('parser'))).toEqual([]);
  });
});

describe('no import cycles in src', () => {
  it('the import graph of src/ has no cycle', () => {
    const root = resolve('src');
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(root, f));
    const graph = new Map<string, string[]>();
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      // Type-only imports vanish at run time; a cycle through them is still a tangle, so they count too.
      const targets = [...text.matchAll(/^(?:import|export)[^'";]*?from\s+'(\.[^']+)';/gm)].map((m) => resolve(dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts')));
      graph.set(file, targets);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' → '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});
