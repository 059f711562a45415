/** Runs the built `peft-native` executable (dist/cli/main.js) in a child process. */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { repoRoot } from './workspace';

export const CLI = path.join(repoRoot, 'dist', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    timeout: 120_000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI and expects exit code 0; returns stdout. */
export function cliOk(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = runCli(args, options);
  if (r.code !== 0) throw new Error(`peft-native ${args.join(' ')} exited with ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}
