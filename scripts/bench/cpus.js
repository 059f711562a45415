'use strict';
// One logical CPU per physical core, read from sysfs, so a peak run with one thread per core never
// puts two threads on SMT siblings (which share the FMA pipes and would not add throughput).
const fs = require('node:fs');

/** Logical CPU ids, one per (package, core) pair; null when sysfs has no topology. */
function onePerPhysicalCore() {
  const root = '/sys/devices/system/cpu';
  let names;
  try {
    names = fs.readdirSync(root).filter((n) => /^cpu\d+$/.test(n));
  } catch {
    return null;
  }
  const seen = new Map();
  for (const name of names) {
    const id = Number(name.slice(3));
    try {
      const topo = `${root}/${name}/topology`;
      const core = fs.readFileSync(`${topo}/core_id`, 'utf8').trim();
      const pkg = fs.readFileSync(`${topo}/physical_package_id`, 'utf8').trim();
      const key = `${pkg}:${core}`;
      if (!seen.has(key) || id < seen.get(key)) seen.set(key, id);
    } catch {
      // An offline CPU has no topology folder: skip it.
    }
  }
  if (seen.size === 0) return null;
  return [...seen.values()].sort((a, b) => a - b);
}

module.exports = { onePerPhysicalCore };
