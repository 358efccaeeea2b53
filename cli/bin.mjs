#!/usr/bin/env node
// The `ats` executable: runs the TypeScript entry through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
