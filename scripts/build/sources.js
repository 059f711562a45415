#!/usr/bin/env node
// Prints one field of native/sources.json for binding.gyp's command expansions.
// Usage: sources.js common | defines | cflags | include_dirs | isa-sources NAME | isa-flags NAME
'use strict';
const path = require('path');
const spec = require(path.join(__dirname, '..', '..', 'native', 'sources.json'));

const [what, name] = process.argv.slice(2);
const lists = {
  common: () => spec.common,
  defines: () => spec.defines,
  cflags: () => [...spec.cflags, `-std=${spec.cxx_std}`],
  include_dirs: () => spec.include_dirs,
  'isa-sources': () => spec.isa[name].sources,
  'isa-flags': () => spec.isa[name].flags,
};
if (!lists[what] || (what.startsWith('isa-') && !spec.isa[name])) {
  process.stderr.write(`sources.js: unknown request "${what} ${name ?? ''}"\n`);
  process.exit(1);
}
process.stdout.write(lists[what]().join(' '));
