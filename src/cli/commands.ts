import { CliError, UsageError } from './errors.js';
import { completionScript, isShell, SHELLS } from './completion.js';
import { READ_TIMEOUT_S, TAGS_TIMEOUT_S, type CommandSpec, type Context } from './context.js';
import { commandHelp, commandNamed, generalHelp } from './help.js';
import { defaultService, headCommit } from './local.js';
import { optionsOf, VALUE_OPTIONS } from './options.js';
import { formatService, formatServices, formatTags, formatVersion } from './output.js';
import { DEFAULT_WAIT_S } from './schemas.js';
import { runChange } from './wait.js';

/** depctl's commands: what each asks the deployer and prints. */

const SERVICE_DEFAULT = 'SERVICE defaults to the name of the current directory.';
const WAIT_DETAILS = [
  '',
  `With --wait, the deployer also waits for the rollout (${DEFAULT_WAIT_S / 60}m, or --wait=DURATION up to 30m) and depctl exits`,
  '0 when the new pods run, 1 when they fail (crash, image pull), 70 when the wait runs out first.',
].join('\n');

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
    '  depctl deploy shop --tag main-a025601 --wait',
  ]),
  deployCommand('canary', 'Deploy a version of a service as a canary, next to the stable version.', [
    'Like deploy, but the stable Deployments stay as they are: each gets a canary Deployment in the given version.',
    '',
    'Examples:',
    '  depctl canary shop --commit a025601337e5dc9a4da284e3248d49e78baf0afe',
  ]),
  {
    name: 'promote',
    usage: 'depctl promote [SERVICE] [--min-age DURATION] [--analysis] [--wait[=DURATION]]',
    summary: "Make the canary's version the stable one.",
    details: [
      'The deployer refuses when there is no canary, or when it is younger than --min-age (e.g. 30m, 2h).',
      'With --analysis (or when the service requires it), the deployer first compares the canary with stable in',
      'Prometheus and refuses when the canary served too few requests or regresses; the figures are printed.',
      SERVICE_DEFAULT,
      WAIT_DETAILS,
      '',
      'Examples:',
      '  depctl promote shop --min-age 30m',
      '  depctl promote shop --wait',
      '  depctl promote shop --min-age 30m --analysis',
    ].join('\n'),
    options: ['min-age', 'analysis', 'wait'],
    takesService: true,
    maxArgs: 1,
    run(ctx) {
      const service = serviceOf(ctx);
      const minAge = ctx.values['min-age'];
      const analysis = ctx.values.analysis === true ? true : undefined;
      return runChange(ctx, {
        service,
        track: 'stable',
        label: `promoting the canary of ${service}`,
        send: (client, wait) => client.promote(service, { minAge, analysis, wait }),
      });
    },
  },
  {
    name: 'rollback',
    usage: 'depctl rollback [SERVICE] [--commit COMMIT | --tag TAG | --to previous] [--wait[=DURATION]]',
    summary: "Remove a service's canary, or deploy an earlier version as the stable one.",
    details: [
      'Without options, the canary is removed and the stable version stays. With --commit or --tag, that version',
      'is deployed as stable too; with --to previous, the stable version that ran before the current one.',
      SERVICE_DEFAULT,
      WAIT_DETAILS,
      '',
      'Examples:',
      '  depctl rollback shop',
      '  depctl rollback shop --tag main-a025601',
      '  depctl rollback shop --to previous --wait=10m',
    ].join('\n'),
    options: ['commit', 'tag', 'to', 'wait'],
    takesService: true,
    maxArgs: 1,
    run(ctx) {
      const service = serviceOf(ctx);
      const { commit, tag, to } = ctx.values;
      if (to !== undefined && (commit !== undefined || tag !== undefined)) {
        throw new UsageError('rollback takes either --to or --commit/--tag, not both');
      }
      return runChange(ctx, {
        service,
        track: 'stable',
        label: `rolling back ${service}`,
        send: (client, wait) => client.rollback(service, { commit, tag, to, wait }),
      });
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
        ctx.io.stdout.write(generalHelp(COMMANDS));
        return Promise.resolve();
      }
      ctx.io.stdout.write(commandHelp(commandNamed(COMMANDS, name)));
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
    usage: `depctl ${name} [SERVICE] [--commit COMMIT | --tag TAG] [--wait[=DURATION]]`,
    summary,
    // The --wait paragraph before the examples.
    details: [...details.slice(0, details.indexOf('Examples:') - 1), WAIT_DETAILS, ...details.slice(details.indexOf('Examples:') - 1)].join('\n'),
    options: ['commit', 'tag', 'wait'],
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
      return runChange(ctx, {
        service,
        track: name === 'canary' ? 'canary' : 'stable',
        label: name === 'canary' ? `deploying a canary of ${service}` : `deploying ${service}`,
        send: (client, wait) => client.deploy(service, name, { commit, tag, wait }),
      });
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
