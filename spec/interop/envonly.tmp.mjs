import { envelopeChecks } from './envelope.mjs';
import { summary, killChildren } from './lib.mjs';
await envelopeChecks();
console.log(summary()); killChildren(); process.exit(0);
