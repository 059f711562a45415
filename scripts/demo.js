#!/usr/bin/env node
// `npm run demo [-- --model <dir> --steps N ...]`: the same as `npx peft-native demo`
// (lib/cli/commands/demo.ts; needs `npm run build:ts` first).
'use strict';
const { main } = require('../dist/cli/program');

main(['demo', ...process.argv.slice(2)]).then((code) => {
  process.exitCode = code;
});
