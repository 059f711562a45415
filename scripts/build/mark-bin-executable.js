#!/usr/bin/env node
// tsc writes dist/cli/main.js as 0644; npm links the package's own bin without fixing the mode on a
// clean clone, so `npx peft-native` fails with "Permission denied" unless the build marks it executable.
'use strict';
const fs = require('fs');
const path = require('path');

const pkg = require(path.join(__dirname, '..', '..', 'package.json'));
for (const rel of Object.values(pkg.bin || {})) {
  const file = path.join(__dirname, '..', '..', rel);
  fs.chmodSync(file, fs.statSync(file).mode | 0o111);
}
