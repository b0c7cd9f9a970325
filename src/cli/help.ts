import { READ_TIMEOUT_S, TAGS_TIMEOUT_S, WRITE_TIMEOUT_S, type CommandSpec } from './context.js';
import { UsageError } from './errors.js';

export function commandNamed(commands: readonly CommandSpec[], name: string): CommandSpec {
  const command = commands.find((c) => c.name === name);
  if (command === undefined) throw new UsageError(`unknown command "${name}"; see "depctl help"`);
  return command;
}

export function generalHelp(commands: readonly CommandSpec[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width + 2)}${c.summary}`);
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
