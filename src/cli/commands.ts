import { execFile } from 'node:child_process';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiError, DeployerClient } from './client.js';
import { completionScript, isShell, SHELLS } from './completion.js';
import { loadCliConfig, type Env } from './config.js';
import { CliError, UsageError } from './errors.js';
import {
  commonTags,
  formatDeploy,
  formatApiError,
  formatService,
  formatServices,
  formatTags,
  formatVersion,
  withSpinner,
  type Stream,
} from './output.js';

/** What a run of depctl sees of the world; the entry point passes the process's, tests may pass their own. */
export interface Io {
  readonly env: Env;
  readonly cwd: string;
  readonly home: string;
  readonly stdout: Stream;
  readonly stderr: Stream;
  /** depctl's own version (package.json). */
  readonly version: string;
}

const OPTIONS = {
  commit: { type: 'string' },
  tag: { type: 'string' },
  to: { type: 'string' },
  'min-age': { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;
export type OptionName = keyof typeof OPTIONS;
type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** The options of every command (`--version` only stands alone). */
export const COMMON_OPTIONS: readonly OptionName[] = ['json', 'timeout', 'help'];
/** Options that take a value, for the completion scripts to skip. */
export const VALUE_OPTIONS: readonly OptionName[] = (Object.keys(OPTIONS) as OptionName[]).filter(
  (o) => OPTIONS[o].type === 'string',
);

const READ_TIMEOUT_S = 30;
/** A deploy waits for the service's lock, CI's image in the registry and the apiserver; the server bounds each. */
const WRITE_TIMEOUT_S = 600;
/** A tab press should not hang the shell. */
const COMPLETION_TIMEOUT_S = 5;
/** Tags need a git fetch and a registry call per image. */
const TAGS_TIMEOUT_S = 120;

interface Context {
  readonly io: Io;
  readonly values: Values;
  readonly args: readonly string[];
  readonly json: boolean;
  /** Creates the client on first use, so help and completion work without any configuration. */
  client(defaultTimeoutS: number): DeployerClient;
  /** Prints the answer: the server's JSON with `--json`, else the human text. */
  print(json: unknown, human: string): void;
  note(message: string): void;
  spin<T>(label: string, work: () => Promise<T>): Promise<T>;
}

export interface CommandSpec {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  /** Explanations and examples for `depctl help COMMAND`. */
  readonly details: string;
  /** Options beyond the common ones. */
  readonly options: readonly OptionName[];
  /** Whether the first argument is a SERVICE (completion offers service names there). */
  readonly takesService: boolean;
  readonly maxArgs: number;
  /** Help and completion: they never ask the deployer, so `--json` and `--timeout` mean nothing to them. */
  readonly local?: true;
  run(ctx: Context): Promise<void>;
}

const SERVICE_DEFAULT = 'SERVICE defaults to the name of the current directory.';

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'ls',
    usage: 'depctl ls',
    summary: 'List the services (those your token may read).',
    details: '',
    options: [],
    takesService: false,
    maxArgs: 0,
    async run(ctx) {
      const answer = await ctx.spin('listing services', () => ctx.client(READ_TIMEOUT_S).services());
      if (answer.body.services.length === 0 && !ctx.json) ctx.note('no services: none is configured, or your token may read none');
      ctx.print(answer.json, formatServices(answer.body));
    },
  },
  {
    name: 'show',
    usage: 'depctl show [SERVICE]',
    summary: "Show a service's configuration and what runs.",
    details: SERVICE_DEFAULT,
    options: [],
    takesService: true,
    maxArgs: 1,
    async run(ctx) {
      const service = serviceOf(ctx);
      const answer = await ctx.spin(`reading ${service}`, () => ctx.client(READ_TIMEOUT_S).service(service));
      ctx.print(answer.json, formatService(answer.body));
    },
  },
  {
    name: 'tags',
    usage: 'depctl tags [SERVICE] [--commit COMMIT]',
    summary: "List the registry tags of a service's images.",
    details: [
      "The images are those without a tag in the service's manifests at COMMIT (default: the repository's",
      'default branch). ' + SERVICE_DEFAULT,
      '',
      'Examples:',
      '  depctl tags shop',
      '  depctl tags shop --commit 025838f',
    ].join('\n'),
    options: ['commit'],
    takesService: true,
    maxArgs: 1,
    async run(ctx) {
      const service = serviceOf(ctx);
      const answer = await ctx.spin(`listing tags of ${service}`, () =>
        ctx.client(TAGS_TIMEOUT_S).tags(service, ctx.values.commit),
      );
      ctx.print(answer.json, formatTags(answer.body));
    },
  },
  deployCommand('deploy', 'Deploy a version of a service.', [
    'Give the version as a commit (SHA or branch), an image tag, or both. Without either, depctl deploys the',
    'commit checked out in the current directory (git rev-parse HEAD). ' + SERVICE_DEFAULT,
    '',
    'Examples:',
    '  # the current directory, at its HEAD commit',
    '  depctl deploy',
    '  depctl deploy shop --commit a025601337e5dc9a4da284e3248d49e78baf0afe',
    '  depctl deploy shop --tag main-a025601',
  ]),
  deployCommand('canary', 'Deploy a version of a service as a canary, next to the stable version.', [
    'Like deploy, but the stable Deployments stay as they are: each gets a canary Deployment in the given version.',
    '',
    'Examples:',
    '  depctl canary shop --commit a025601337e5dc9a4da284e3248d49e78baf0afe',
  ]),
  {
    name: 'promote',
    usage: 'depctl promote [SERVICE] [--min-age DURATION]',
    summary: "Make the canary's version the stable one.",
    details: [
      'The deployer refuses when there is no canary, or when it is younger than --min-age (e.g. 30m, 2h).',
      SERVICE_DEFAULT,
      '',
      'Examples:',
      '  depctl promote shop --min-age 30m',
    ].join('\n'),
    options: ['min-age'],
    takesService: true,
    maxArgs: 1,
    async run(ctx) {
      const service = serviceOf(ctx);
      const minAge = ctx.values['min-age'];
      const answer = await ctx.spin(`promoting the canary of ${service}`, () =>
        ctx.client(WRITE_TIMEOUT_S).promote(service, { minAge }),
      );
      ctx.print(answer.json, formatDeploy(answer.body));
    },
  },
  {
    name: 'rollback',
    usage: 'depctl rollback [SERVICE] [--commit COMMIT | --tag TAG | --to previous]',
    summary: "Remove a service's canary, or deploy an earlier version as the stable one.",
    details: [
      'Without options, the canary is removed and the stable version stays. With --commit or --tag, that version',
      'is deployed as stable too; with --to previous, the stable version that ran before the current one.',
      SERVICE_DEFAULT,
      '',
      'Examples:',
      '  depctl rollback shop',
      '  depctl rollback shop --tag main-a025601',
      '  depctl rollback shop --to previous',
    ].join('\n'),
    options: ['commit', 'tag', 'to'],
    takesService: true,
    maxArgs: 1,
    async run(ctx) {
      const service = serviceOf(ctx);
      const { commit, tag, to } = ctx.values;
      if (to !== undefined && (commit !== undefined || tag !== undefined)) {
        throw new UsageError('rollback takes either --to or --commit/--tag, not both');
      }
      const answer = await ctx.spin(`rolling back ${service}`, () =>
        ctx.client(WRITE_TIMEOUT_S).rollback(service, { commit, tag, to }),
      );
      ctx.print(answer.json, formatDeploy(answer.body));
    },
  },
  {
    name: 'version',
    usage: 'depctl version',
    summary: "Print depctl's version and the deployer's.",
    details: 'depctl --version prints only depctl\'s own version, without asking the deployer.',
    options: [],
    takesService: false,
    maxArgs: 0,
    async run(ctx) {
      const own = { name: 'depctl', version: ctx.io.version };
      // depctl's own version first: it is what a bug report needs even when the deployer cannot be reached.
      if (!ctx.json) ctx.io.stdout.write(`${formatVersion(ctx.io.version, undefined)}\n`);
      try {
        const answer = await ctx.spin('asking the deployer', () => ctx.client(READ_TIMEOUT_S).version());
        if (ctx.json) ctx.print({ depctl: own, deployer: answer.json }, '');
        else ctx.io.stdout.write(`${answer.body.name} ${answer.body.version}\n`);
      } catch (err) {
        if (err instanceof CliError && ctx.json) throw new CliError(err.message, { exitCode: err.exitCode, json: { depctl: own, deployer: err.json } });
        throw err;
      }
    },
  },
  {
    name: 'help',
    usage: 'depctl help [COMMAND]',
    summary: 'Print help for depctl or for one command.',
    details: '',
    options: [],
    takesService: false,
    maxArgs: 1,
    local: true,
    run(ctx) {
      const name = ctx.args[0];
      if (name === undefined) {
        ctx.io.stdout.write(generalHelp());
        return Promise.resolve();
      }
      ctx.io.stdout.write(commandHelp(commandNamed(name)));
      return Promise.resolve();
    },
  },
  {
    name: 'completion',
    usage: `depctl completion ${SHELLS.join('|')}`,
    summary: 'Print the shell completion script.',
    details: [
      'Completes commands, options, service names (from the deployer) and, after --tag, image tags.',
      '',
      'bash, in ~/.bashrc:',
      '  source <(depctl completion bash)',
      'zsh, in ~/.zshrc after compinit:',
      '  source <(depctl completion zsh)',
    ].join('\n'),
    options: [],
    takesService: false,
    maxArgs: 1,
    local: true,
    run(ctx) {
      const shell = ctx.args[0];
      if (shell === undefined || !isShell(shell)) {
        throw new UsageError(`completion needs a shell: ${SHELLS.join(' or ')}`);
      }
      ctx.io.stdout.write(
        completionScript(shell, {
          commands: COMMANDS.map((c) => ({
            name: c.name,
            summary: c.summary,
            options: optionsOf(c).map((o) => `--${o}`),
            takesService: c.takesService,
          })),
          valueOptions: VALUE_OPTIONS.map((o) => `--${o}`),
        }),
      );
      return Promise.resolve();
    },
  },
];

function deployCommand(name: 'deploy' | 'canary', summary: string, details: string[]): CommandSpec {
  return {
    name,
    usage: `depctl ${name} [SERVICE] [--commit COMMIT | --tag TAG]`,
    summary,
    details: details.join('\n'),
    options: ['commit', 'tag'],
    takesService: true,
    maxArgs: 1,
    async run(ctx) {
      const service = serviceOf(ctx);
      let { commit } = ctx.values;
      const { tag } = ctx.values;
      if (commit === undefined && tag === undefined) {
        commit = await headCommit(ctx.io.cwd);
        ctx.note(`no --commit or --tag given: using the current directory's HEAD, commit ${commit}`);
      }
      const what = name === 'canary' ? `deploying a canary of ${service}` : `deploying ${service}`;
      const answer = await ctx.spin(what, () => ctx.client(WRITE_TIMEOUT_S).deploy(service, name, { commit, tag }));
      ctx.print(answer.json, formatDeploy(answer.body));
    },
  };
}

/** The SERVICE argument, or the current directory's name (as the original depctl did), saying so. */
function serviceOf(ctx: Context): string {
  const given = ctx.args[0];
  if (given !== undefined) return given;
  const service = defaultService(ctx.io.cwd);
  ctx.note(`no SERVICE given: using the current directory's name, "${service}"`);
  return service;
}

export function defaultService(cwd: string): string {
  return basename(cwd);
}

/** `git rev-parse HEAD` in `cwd` (argument array, no shell). */
export function headCommit(cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'],
      { cwd, timeout: 10_000, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
      (err, stdout, stderr) => {
        const sha = stdout.trim();
        if (err === null && /^[0-9a-f]{40,64}$/.test(sha)) {
          resolve(sha);
          return;
        }
        const why =
          (err as NodeJS.ErrnoException | null)?.code === 'ENOENT'
            ? 'git is not installed'
            : stderr.trim().split('\n')[0] || `${cwd} has no commit checked out`;
        reject(new UsageError(`no --commit or --tag given, and the current directory's HEAD is unknown: ${why}`));
      },
    );
  });
}

/** The options a command accepts, the common ones included. */
function optionsOf(command: CommandSpec): OptionName[] {
  return command.local ? [...command.options, 'help'] : [...command.options, ...COMMON_OPTIONS];
}

function commandNamed(name: string): CommandSpec {
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) throw new UsageError(`unknown command "${name}"; see "depctl help"`);
  return command;
}

export function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width + 2)}${c.summary}`);
  return [
    'depctl: the command line client of the deployer.',
    '',
    'Usage: depctl COMMAND [SERVICE] [OPTIONS]',
    '',
    'Commands:',
    ...lines,
    '',
    'See "depctl help COMMAND" for the options and examples of a command.',
    '',
    'Options of every command:',
    '  --json              print the deployer\'s JSON answer, for scripts',
    `  --timeout SECONDS   how long to wait for the deployer (default ${READ_TIMEOUT_S}; tags ${TAGS_TIMEOUT_S}, changes ${WRITE_TIMEOUT_S})`,
    '  -h, --help          help for the command',
    '  -V, --version       print depctl\'s version',
    '',
    'Configuration, from the environment or ~/.deployer/deployer_env (KEY=VALUE lines; the environment wins):',
    '  DEPLOYER_URL          the deployer, e.g. https://deployer.example.com',
    '  DEPLOYER_AUTH_TOKEN   your token\'s secret',
    '  DEPLOYER_TOKEN_NAME   your token\'s name (default auth_token)',
    '',
  ].join('\n');
}

export function commandHelp(command: CommandSpec): string {
  const lines = [`Usage: ${command.usage}${command.local ? '' : ' [--json]'}`, '', command.summary];
  if (command.details !== '') lines.push('', command.details);
  lines.push('');
  return lines.join('\n');
}

const isUsage = (err: unknown): boolean =>
  err instanceof TypeError && /^ERR_PARSE_ARGS_/.test(String((err as NodeJS.ErrnoException).code));

/** Runs depctl with `argv` (without node and the script); returns the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  if (argv[0] === COMPLETE) return complete(argv.slice(1), io);
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    if (!isUsage(err)) throw err;
    return fail(io, new UsageError(`${(err as Error).message}\nsee "depctl help"`), false);
  }
  const json = values.json === true;
  const [name, ...args] = positionals;
  try {
    if (name === undefined) {
      if (values.version === true) io.stdout.write(`${io.version}\n`);
      else io.stdout.write(generalHelp());
      return 0;
    }
    const command = commandNamed(name);
    if (values.help === true) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    const allowed = new Set<OptionName>(optionsOf(command));
    const wrong = (Object.keys(values) as OptionName[]).find((o) => !allowed.has(o));
    if (wrong !== undefined) throw new UsageError(`"depctl ${name}" takes no --${wrong}; see "depctl help ${name}"`);
    if (args.length > command.maxArgs) {
      throw new UsageError(
        `too many arguments for "depctl ${name}": ${args.slice(command.maxArgs).join(' ')}; see "depctl help ${name}"`,
      );
    }
    const timeoutS = timeoutOf(values.timeout);
    let client: DeployerClient | undefined;
    const ctx: Context = {
      io,
      values,
      args,
      json,
      client(defaultTimeoutS) {
        if (client !== undefined) return client;
        const config = loadCliConfig(io.env, io.home);
        for (const warning of config.warnings) io.stderr.write(`depctl: warning: ${warning}\n`);
        client = new DeployerClient({
          config,
          userAgent: `depctl/${io.version}`,
          timeoutMs: (timeoutS ?? defaultTimeoutS) * 1000,
        });
        return client;
      },
      print(answer, human) {
        io.stdout.write(json ? `${JSON.stringify(answer, null, 2)}\n` : human === '' ? '' : `${human}\n`);
      },
      note(message) {
        io.stderr.write(`depctl: ${message}\n`);
      },
      spin(label, work) {
        // Only for a person at a terminal; `--json` output is for a script.
        const enabled = !json && io.stdout.isTTY === true && io.stderr.isTTY === true;
        return withSpinner(enabled, io.stderr, label, work);
      },
    };
    await command.run(ctx);
    return 0;
  } catch (err) {
    if (err instanceof CliError) return fail(io, err, json);
    throw err;
  }
}

function timeoutOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`--timeout must be a number of seconds, not ${JSON.stringify(value)}`);
  }
  return seconds;
}

function fail(io: Io, err: CliError, json: boolean): number {
  const message = err instanceof ApiError && err.body !== undefined ? formatApiError(err.message, err.status, err.body) : err.message;
  io.stderr.write(`depctl: ${message}\n`);
  if (json) io.stdout.write(`${JSON.stringify(err.json, null, 2)}\n`);
  return err.exitCode;
}

/** The hidden subcommand the completion scripts call. */
export const COMPLETE = '__complete';

/**
 * `depctl __complete services` and `depctl __complete tags [SERVICE]`: one word per line, for the completion
 * scripts. Silent on any failure (a tab press must not print errors into the command line); exit 1 then.
 */
async function complete(args: readonly string[], io: Io): Promise<number> {
  const [what, service] = args;
  try {
    const client = new DeployerClient({
      config: loadCliConfig(io.env, io.home),
      userAgent: `depctl/${io.version}`,
      timeoutMs: COMPLETION_TIMEOUT_S * 1000,
    });
    let words: string[];
    if (what === 'services') {
      words = [...(await client.services()).body.services];
    } else if (what === 'tags') {
      words = commonTags((await client.tags(service ?? defaultService(io.cwd))).body);
    } else {
      return 1;
    }
    if (words.length > 0) io.stdout.write(`${words.join('\n')}\n`);
    return 0;
  } catch {
    return 1;
  }
}
