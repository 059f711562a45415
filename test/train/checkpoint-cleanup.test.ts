// removeUnfinishedSaves: what a killed training process leaves in its output folder (a checkpoint's
// hidden temporary folder, an atomic write's hidden temporary file) is removed by the next run,
// and only when the process that wrote it is gone.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { removeUnfinishedSaves } from '../../lib/train/checkpoint';

/** The pid of a process that has exited (its number is free again, for a while at least). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

it('removes the temporary files and folders of a dead process and keeps those of a live one', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cleanup-'));
  const dead = deadPid();
  const names = {
    deadFile: `.report.html.part-${dead}-1796626391483-11`,
    deadFolder: `.checkpoint-4.part-${dead}-1796626391483`,
    liveFile: `.run.jsonl.part-${process.pid}-1796626391483-3`,
    kept: 'report.html',
  };
  fs.writeFileSync(path.join(out, names.deadFile), 'half a report');
  fs.mkdirSync(path.join(out, names.deadFolder));
  fs.writeFileSync(path.join(out, names.liveFile), 'being written');
  fs.writeFileSync(path.join(out, names.kept), 'whole');
  removeUnfinishedSaves(out);
  expect(fs.readdirSync(out).sort()).toEqual([names.liveFile, names.kept].sort());
  fs.rmSync(out, { recursive: true, force: true });
});
