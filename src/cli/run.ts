import { ApiError, DeployerClient } from './client.js';
import { COMMANDS } from './commands.js';
import { loadCliConfig } from './config.js';
import { COMPLETION_TIMEOUT_S, type Context, type Io } from './context.js';
import { CliError, EXIT, UsageError } from './errors.js';
import { commandHelp, commandNamed, generalHelp } from './help.js';
import { defaultService, executor } from './local.js';
import { optionsOf, parseCommandLine, type OptionName, type Values } from './options.js';
import { commonTags, formatApiError, withSpinner } from './output.js';
import { waitSecondsOf } from './wait.js';

/** Runs depctl with `argv` (without node and the script); returns the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  if (argv[0] === COMPLETE) return complete(argv.slice(1), io);
  let values: Values;
  let positionals: readonly string[];
  try {
    ({ values, positionals } = parseCommandLine(argv, (name) => {
      const command = COMMANDS.find((c) => c.name === name);
      return command === undefined ? undefined : optionsOf(command);
    }));
  } catch (err) {
    if (err instanceof CliError) return fail(io, err, false);
    throw err;
  }
  const json = values.json === true;
  const [name, ...args] = positionals;
  try {
    if (name === undefined) {
      if (values.version === true) io.stdout.write(`${io.version}\n`);
      else io.stdout.write(generalHelp(COMMANDS));
      return 0;
    }
    const command = commandNamed(COMMANDS, name);
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
    // Checked before anything is looked up or sent, as --timeout is.
    waitSecondsOf(values.wait);
    let client: DeployerClient | undefined;
    const ctx: Context = {
      io,
      values,
      args,
      json,
      client(defaultTimeoutS, extraS = 0) {
        if (client !== undefined) return client;
        const config = loadCliConfig(io.env, io.home);
        for (const warning of config.warnings) io.stderr.write(`depctl: warning: ${warning}\n`);
        client = new DeployerClient({
          config,
          userAgent: `depctl/${io.version}`,
          timeoutMs: ((timeoutS ?? defaultTimeoutS) + extraS) * 1000,
          executor: executor(io.cwd, io.env),
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
    return (await command.run(ctx)) ?? EXIT.ok;
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
