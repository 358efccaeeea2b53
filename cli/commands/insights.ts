/** `ats insights [--json]`: what the advisor learned per job type and queue, and what it changes (docs/advisor.md). */
import { insightsText } from './output.js';
import { clientCommand, out, type CommandSpec } from './run.js';

export const insightsSpec: CommandSpec = {
  usage: 'ats insights [--json]',
  details: ['--json  print the API\'s JSON (GET /v1/insights)'],
  options: { json: { type: 'boolean' } },
  positionals: [0, 0],
};

export const insightsCommand = clientCommand(insightsSpec, async ({ client, values }) => {
  const insights = await client.insights();
  out(values.json ? JSON.stringify(insights) : insightsText(insights));
  return 0;
});
