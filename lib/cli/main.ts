#!/usr/bin/env node
/** The `peft-native` executable. */
import { main } from './program';

// Output piped into a command that stopped reading (`| head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
