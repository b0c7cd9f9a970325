import { spawn, execFile } from 'node:child_process';
import { builtinModules } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { filesBelow, ROOT } from './helpers.js';

/**
 * There is no Docker engine on the test machine: these tests check what can be checked without building the image.
 * The Dockerfile's structure, that everything it copies exists and is not excluded by .dockerignore, and that the
 * build stage's `npm run build` produces the file CMD starts, which then starts with the production dependencies.
 */

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name?: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions: comments dropped, continuation lines joined, ARG defaults applied. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(`${current}${line}`.trim());
    current = '';
  }
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of logical.filter((l) => l !== '')) {
    const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const from = (m?.[1] ?? '').replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? '');
      stages.push({ from, name: m?.[2], instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (stage === undefined) {
      if (upper === 'ARG') {
        const [name = '', value = ''] = rest.split('=');
        args[name] = value;
      }
      continue;
    }
    stage.instructions.push({ keyword: upper, args: rest });
  }
  return { args, stages };
}

/** The sources of a COPY from the build context (COPY --from=... copies from a stage, not the context). */
function contextSources(instruction: Instruction): string[] | undefined {
  if (instruction.keyword !== 'COPY' || instruction.args.includes('--from=')) return undefined;
  const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith('--'));
  return words.slice(0, -1);
}

/** Whether a .dockerignore pattern (plain paths and `*` globs, as this repository uses) excludes `path`. */
function ignored(path: string, patterns: readonly string[]): boolean {
  let out = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = negate ? raw.slice(1) : raw;
    const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
    if (regex.test(path)) out = !negate;
  }
  return out;
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(dockerfile);
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const runtime = stages[stages.length - 1] as Stage;
const runs = (stage: Stage): string => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
const last = (stage: Stage, keyword: string): string | undefined =>
  stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args).pop();
/** The runtime stage's NODE_OPTIONS (ENV, quoted or not): node must accept them, or the image would not start. */
const nodeOptions = ((): string | undefined => {
  const env = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  const m = /\bNODE_OPTIONS=(?:"([^"]*)"|(\S+))/.exec(env);
  return m?.[1] ?? m?.[2];
})();

describe('Dockerfile', () => {
  it('builds in a stage with dev dependencies and runs with production dependencies only', () => {
    const build = stages.find((s) => /npm run build/.test(runs(s)));
    expect(build, 'a stage runs npm run build').toBeDefined();
    expect(runs(build as Stage)).toMatch(/npm ci(?! [^\n]*--omit=dev)/);
    const prodDeps = stages.find((s) => /npm ci [^\n]*--omit=dev/.test(runs(s)));
    expect(prodDeps, 'a stage installs with --omit=dev').toBeDefined();
    const copiesFrom = runtime.instructions.filter((i) => i.keyword === 'COPY' && i.args.includes('--from=')).map((i) => i.args);
    expect(copiesFrom).toContainEqual(expect.stringMatching(new RegExp(`--from=${prodDeps?.name ?? '?'} /app/node_modules`)));
    expect(copiesFrom).toContainEqual(expect.stringMatching(new RegExp(`--from=${build?.name ?? '?'} /app/dist`)));
    // The runtime stage installs no npm packages itself, so dev dependencies cannot slip in.
    expect(runs(runtime)).not.toMatch(/npm (ci|install)/);
    expect(stages.length).toBeGreaterThanOrEqual(2);
  });

  it('every stage is a slim Debian Node image of an LTS line (even major >= 20)', () => {
    for (const stage of stages) {
      const m = /^node:(\d+)-(bookworm|trixie)-slim$/.exec(stage.from);
      expect(m, stage.from).not.toBeNull();
      const major = Number(m?.[1]);
      expect(major % 2, stage.from).toBe(0);
      expect(major).toBeGreaterThanOrEqual(20);
    }
  });

  it('installs git, openssh-client and subversion in the image that runs', () => {
    const install = /apt-get install[^\n&]*/.exec(runs(runtime))?.[0] ?? '';
    for (const pkg of ['git', 'openssh-client', 'subversion']) expect(install.split(/\s+/), pkg).toContain(pkg);
    expect(runs(runtime)).toContain('rm -rf /var/lib/apt/lists/*');
  });

  it('runs as a numeric non-root user that owns the cache directory', () => {
    const user = last(runtime, 'USER') ?? '';
    const [uid = ''] = user.split(':');
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    expect(runs(runtime)).toContain(`mkdir -p /var/cache/deployer`);
    expect(runs(runtime)).toContain(`chown ${user} /var/cache/deployer`);
    expect(runs(runtime)).toContain(`useradd --uid ${uid}`);
  });

  it('has no HEALTHCHECK: Kubernetes probes /healthz and /readyz', () => {
    expect(stages.flatMap((s) => s.instructions).filter((i) => i.keyword === 'HEALTHCHECK')).toEqual([]);
  });

  it('copies only files that exist in the repository and that .dockerignore lets through', () => {
    const sources = stages.flatMap((s) => s.instructions.flatMap((i) => contextSources(i) ?? []));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored(source.replace(/^\.\//, '').replace(/\/$/, ''), dockerignore), source).toBe(false);
    }
    // And what must stay out of the context does.
    for (const path of ['node_modules', 'dist', '.git', 'test', 'kubernetes']) expect(ignored(path, dockerignore), path).toBe(true);
  });

  it('CMD starts the file that the build stage compiles from src/main.ts', () => {
    const cmd = JSON.parse(last(runtime, 'CMD') ?? '[]') as string[];
    expect(cmd[0]).toBe('node');
    const file = cmd[1] ?? '';
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    expect(file.startsWith(`${build.compilerOptions.outDir}/`)).toBe(true);
    const source = join(build.compilerOptions.rootDir, file.slice(build.compilerOptions.outDir.length + 1).replace(/\.js$/, '.ts'));
    expect(source).toBe('src/main.ts');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['build']).toBe('tsc -p tsconfig.build.json');
    expect(pkg.scripts['start']).toBe(`node ${file}`);
    expect(last(runtime, 'WORKDIR')).toBe('/app');
    expect(last(runtime, 'ENTRYPOINT')).toBe('["/usr/bin/tini", "--"]');
  });

  describe('the build stage’s compile', () => {
    // Inside the repository, so that the compiled files find node_modules and ../package.json as in the image.
    const out = mkdtempSync(join(ROOT, '.build-test-'));
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it('produces the CMD file, which imports only production dependencies and starts', async () => {
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT });
      expect(existsSync(join(out, 'main.js'))).toBe(true);

      // What the runtime stage has: the dependencies of package.json, and Node's own modules.
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
      const imported = new Set<string>();
      for (const file of filesBelow(out, out).filter((f) => f.endsWith('.js'))) {
        const text = readFileSync(join(out, file), 'utf8');
        for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|import\('([^']+)'\)/g)) {
          const spec = m[1] ?? m[2] ?? '';
          if (spec.startsWith('.')) continue;
          const name = spec.startsWith('node:') ? spec.slice(5) : spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0] ?? '';
          imported.add(name);
        }
      }
      expect(imported.size).toBeGreaterThan(3);
      expect([...imported].filter((name) => !allowed.has(name))).toEqual([]);

      // Started as the image starts it, with a config that needs nothing outside: it listens and answers /healthz.
      const child = spawn(process.execPath, [join(relative(ROOT, out), 'main.js')], {
        cwd: ROOT,
        env: {
          PATH: process.env['PATH'] ?? '',
          NODE_ENV: 'production',
          ...(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions }),
          DEPLOYER_AUTH_TOKEN: 'x',
          DEPLOYER_PORT: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        const address = await new Promise<string>((resolve, reject) => {
          let text = '';
          child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
            text += chunk;
            const m = /"address":"([^"]+)"[^\n]*"msg":"listening"/.exec(text);
            if (m?.[1] !== undefined) resolve(m[1]);
          });
          void exit.then((code) => reject(new Error(`exited ${String(code)} before listening: ${text}`)));
        });
        const health = await fetch(`${address.replace('0.0.0.0', '127.0.0.1')}/healthz`);
        expect(health.status).toBe(200);
        child.kill('SIGTERM');
        expect(await exit).toBe(0);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    }, 180_000);
  });
});
