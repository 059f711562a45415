/** Whole-file writes that never leave a half-written file behind. @internal */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';

/**
 * Writes `data` to a temporary file beside `file`, flushes it to disk and renames it over `file`:
 * readers see the old file or the new one, never a part.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const part = path.join(dir, `.${path.basename(file)}.part-${process.pid}-${Date.now()}`);
  let fd: number | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true });
    // 'wx': never through a file or symlink already at the temporary name.
    fd = fs.openSync(part, 'wx');
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let written = 0; written < bytes.length; ) written += fs.writeSync(fd, bytes, written, bytes.length - written);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(part, file);
  } catch (err) {
    try {
      if (fd !== undefined) fs.closeSync(fd);
      fs.rmSync(part, { force: true });
    } catch {
      // nothing was created (e.g. the folder could not be made)
    }
    throw new PeftError(`Could not write ${file}: ${(err as Error).message}`, 'E_IO');
  }
}
