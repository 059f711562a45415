/**
 * Tests that run compiled JavaScript in a child process (the CLI, a process that gets killed) need
 * dist/ to match lib/. This builds it once when a source is newer than the build, under a lock so
 * that test files running in parallel never read a half-written dist/.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { repoRoot, run } from './workspace';

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `npm run build:ts` unless dist/ is newer than every file in lib/. */
export function ensureBuilt(): void {
  const id = createHash('sha256').update(repoRoot).digest('hex').slice(0, 16);
  const lock = path.join(os.tmpdir(), `peft-native-build-${id}.lock`);
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // Another test file is building; a lock older than five minutes belongs to a dead process.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 300_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        // removed meanwhile
      }
      sleep(200);
    }
  }
  try {
    // index.mjs is the last file build:ts writes.
    const stamp = path.join(repoRoot, 'dist', 'index.mjs');
    const built = fs.existsSync(stamp) ? fs.statSync(stamp).mtimeMs : 0;
    if (built < newestSource(path.join(repoRoot, 'lib'))) run('npm', ['run', 'build:ts'], repoRoot);
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
