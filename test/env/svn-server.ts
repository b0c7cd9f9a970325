import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Started } from './global-setup.js';
import type { SvnGround } from './ground.js';
import { freePort, spawnServer, waitForPort } from './processes.js';

const USERNAME = 'deployer';
const PASSWORD_DEFAULT = 'svn-secret-password';

/**
 * svnserve on a free loopback port serving every repository below `info.root` (svnadmin create ROOT/NAME), with
 * one configuration for all of them: no anonymous access, one user from a password file.
 */
export async function startSvnServer(
  dir: string,
  logsDir: string,
  options: { password?: string } = {},
): Promise<Started<SvnGround>> {
  const root = join(dir, 'repos');
  mkdirSync(root, { recursive: true });
  const password = options.password ?? PASSWORD_DEFAULT;
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, `[users]\n${USERNAME} = ${password}\n`, { mode: 0o600 });
  const conf = join(dir, 'svnserve.conf');
  writeFileSync(
    conf,
    ['[general]', 'anon-access = none', 'auth-access = write', `password-db = ${passwd}`, 'realm = deployer-ground', ''].join(
      '\n',
    ),
  );
  const port = await freePort();
  const server = spawnServer({
    name: `svnserve-${port}`,
    command: 'svnserve',
    args: [
      '-d',
      '--foreground',
      '--listen-host',
      '127.0.0.1',
      '--listen-port',
      String(port),
      '-r',
      root,
      '--config-file',
      conf,
    ],
    logsDir,
  });
  try {
    await waitForPort(port, { what: 'svnserve', process: server, timeoutMs: 20_000 });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    info: { baseUrl: `svn://127.0.0.1:${port}/`, username: USERNAME, password, root },
    stop: () => server.stop(),
  };
}
