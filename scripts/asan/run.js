#!/usr/bin/env node
// Runs any command against the sanitized addon (build it first: npm run build:asan), e.g.
//   node scripts/asan/run.js node scripts/demo.js
// and fails when any process it started wrote a sanitizer report (see scripts/asan/env.js).
'use strict';
const { runSanitized } = require('./env');

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: node scripts/asan/run.js COMMAND [ARGS...]');
  process.exit(2);
}
process.exit(runSanitized('asan', command, args));
