/** Whole-file writes that never leave a half-written file behind. @internal */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';

let tempCounter = 0;

/** A fresh hidden name beside `file` for its temporary copy (unique within and across processes). */
export function tempPath(file: string): string {
  const dir = path.dirname(path.resolve(file));
  return path.join(dir, `.${path.basename(file)}.part-${process.pid}-${Date.now()}-${tempCounter++}`);
}

/**
 * Flushes a folder's entries (a rename or unlink in it) to disk. Some file systems cannot sync a
 * folder; the rename is still atomic there, only its durability across a power cut is not promised.
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // see above
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `chunks` to a temporary file beside `file`, flushes it to disk and renames it over `file`:
 * readers see the old file or the new one, never a part. The temporary file is created exclusively
 * (O_EXCL), so a link planted at its name is never followed.
 */
export function writeChunksAtomic(file: string, chunks: readonly Uint8Array[]): void {
  const dir = path.dirname(path.resolve(file));
  const part = tempPath(file);
  let fd: number | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fd = fs.openSync(part, 'wx', 0o644);
    for (const bytes of chunks) {
      // writeSync may write less than asked (large buffers): continue until the chunk is out.
      for (let written = 0; written < bytes.length; ) written += fs.writeSync(fd, bytes, written, bytes.length - written);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(part, file);
    fsyncDir(dir);
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

/** {@link writeChunksAtomic} for one string (UTF-8) or byte array. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  writeChunksAtomic(file, [typeof data === 'string' ? Buffer.from(data, 'utf8') : data]);
}

/**
 * Removes `file` (if present) durably. Folders of several files (an adapter, an exported model)
 * remove their marker file (adapter_config.json, config.json) with this before rewriting the others
 * and write it again last: a folder interrupted half-way lacks the marker, and loaders refuse it
 * instead of pairing new weights with an old config.
 */
export function removeFileDurably(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch (err) {
    throw new PeftError(`Could not remove ${file}: ${(err as Error).message}`, 'E_IO');
  }
  fsyncDir(path.dirname(path.resolve(file)));
}
