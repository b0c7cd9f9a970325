import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * One Node line everywhere: .node-version (the exact version CI installs), package.json `engines`, the Dockerfile's
 * base image and the test ground's image (test/env/deployer-image.sh) name the same major; the suite itself runs on
 * it; and scripts/node.sh, which CI and the README's commands use, picks the machine's node only when it is of that
 * line and the installed one otherwise.
 */

const run = promisify(execFile);
const wanted = readFileSync('.node-version', 'utf8').trim();
const major = wanted.split('.')[0] ?? '';

describe('the Node line', () => {
  it('.node-version is one exact version', () => {
    expect(wanted).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('package.json engines, the Dockerfile and the test ground image name the same line', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
    expect(pkg.engines.node).toBe(`^${major}`);
    // The types of the Node the code runs on, so that typecheck knows its APIs and no newer ones.
    expect(pkg.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${major}\\.`));
    expect(readFileSync('Dockerfile', 'utf8')).toMatch(new RegExp(`^ARG NODE_IMAGE=node:${major}-bookworm-slim$`, 'm'));
    const image = readFileSync('test/env/deployer-image.sh', 'utf8');
    expect(image).toMatch(/^node_version=\$\(tr -d '\[:space:\]' <\.node-version\)$/m);
  });

  it(`the suite runs on it (put "$(bash scripts/node.sh)" first on PATH)`, () => {
    expect(process.versions.node.split('.')[0]).toBe(major);
  });

  describe('scripts/node.sh', () => {
    const dir = mkdtempSync(join(tmpdir(), 'node-sh-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    /** A directory with a `node` that says it is `version` (and nothing else on PATH but the shell's tools). */
    const fakeNode = (name: string, version: string): string => {
      const bin = join(dir, name);
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, 'node'), `#!/bin/sh\nif [ "$1" = -p ]; then echo ${version.split('.')[0]}; else echo v${version}; fi\n`);
      chmodSync(join(bin, 'node'), 0o755);
      return bin;
    };
    const nodeSh = async (path: string): Promise<{ stdout: string; stderr: string }> => {
      const env = { PATH: `${path}:/usr/bin:/bin`, DEPLOYER_NODE_CACHE: join(dir, 'cache') };
      const { stdout, stderr } = await run('bash', ['scripts/node.sh'], { env });
      return { stdout: stdout.trim(), stderr };
    };

    it('names the machine’s node when it is of the line', async () => {
      const same = fakeNode('same-line', `${major}.0.1`);
      expect(await nodeSh(same)).toEqual({ stdout: same, stderr: '' });
    });

    it('names the installed node of .node-version when the machine’s is older, without installing it again', async () => {
      const installed = fakeNode(join('cache', wanted, 'node_modules', '.bin'), wanted);
      // An install would say so on stderr.
      expect(await nodeSh(fakeNode('old', '20.20.2'))).toEqual({ stdout: installed, stderr: '' });
    });
  });
});
