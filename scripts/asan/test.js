#!/usr/bin/env node
// `npm run test:asan`: builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer (if it is out of
// date) and runs the jest suites that reach native code against it, in one process (--runInBand).
//
// Any sanitizer report fails the run, wherever it happened: in the jest process (which the sanitizer
// aborts) or in a child process a test spawned (the CLI tests expect some children to fail, so their exit
// code alone proves nothing). Every process writes its reports to build-asan/reports/, and this script
// prints them and exits 1 when that folder is not empty afterwards.
//
// Usage: node scripts/asan/test.js [--ci] [--no-build] [jest arguments or test paths]
//   --ci        only the fixed subset CI runs (scripts/asan/ci-subset.js): 7 min against 12 for all, on 2 cores
//   --no-build  use build-asan/peft_native.node as it is
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const { runSanitized } = require('./env');
const ciSubset = require('./ci-subset');

const root = path.resolve(__dirname, '..', '..');

/**
 * Suites that never reach the addon in-process, or that rebuild the project with other compilers and
 * would only get slower with the ASan runtime preloaded into g++ and npm.
 */
const NOT_NATIVE = ['test/build.test.ts', 'test/package.test.ts', 'test/docs.test.ts'];

function main() {
  const args = process.argv.slice(2);
  const ci = args.includes('--ci');
  const build = !args.includes('--no-build');
  const jestArgs = args.filter((a) => a !== '--ci' && a !== '--no-build');

  if (build) {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'build.js')], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  const selection = ci ? ciSubset : [];
  // One pattern, and last: jest's array options swallow the positional arguments that follow them.
  const ignore = ['--testPathIgnorePatterns', `(${NOT_NATIVE.map((f) => f.replace(/\./g, '\\.')).join('|')})$`];
  const jest = require.resolve('jest/bin/jest');
  process.chdir(root);
  process.exit(runSanitized('test:asan', process.execPath, [jest, '--runInBand', ...selection, ...jestArgs, ...ignore]));
}

main();
