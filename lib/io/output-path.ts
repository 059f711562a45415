/**
 * Writing only inside an output folder: a symbolic link planted in it (an adapter's sub-folder, a
 * checkpoint folder, run.jsonl) must not carry a write, an append or a deletion to files elsewhere.
 * The folder itself may be a link (the caller chose it).
 * @internal
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Where a link points: its real path, or (dangling) its target resolved against its folder. */
function linkTarget(link: string): string {
  try {
    return fs.realpathSync(link);
  } catch {
    return path.resolve(path.dirname(link), fs.readlinkSync(link));
  }
}

/**
 * Throws E_IO naming the link when `target` (a path inside `root`), or a folder between them, is a
 * symbolic link that leads out of `root`. Parts that do not exist yet are fine.
 */
export function checkInsideOutput(root: string, target: string): void {
  const base = path.resolve(root);
  let realRoot: string;
  try {
    realRoot = fs.realpathSync(base);
  } catch {
    return; // the folder does not exist yet: nothing in it can be a link
  }
  const rel = path.relative(base, path.resolve(target));
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new PeftError(`Expected a path inside the output folder ${root} but received ${target}`, 'E_ARGUMENT');
  }
  let current = base;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    current = path.join(current, part);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(current);
    } catch {
      return; // does not exist (yet)
    }
    if (!stat.isSymbolicLink()) continue;
    const to = linkTarget(current);
    if (!inside(realRoot, to)) {
      throw new PeftError(`Refusing to write through ${current}: it is a symbolic link to ${to}, outside the output folder ${root}`, 'E_IO');
    }
  }
}
