/**
 * The Beta distribution's CDF (the advisor's posterior over a signature's
 * chance of recovery), from jstat: a kept statistics library in one package
 * (its declarations are in jstat.d.ts: it ships none).
 */
import jstat from 'jstat';

export const betaCdf = (x: number, alpha: number, beta: number): number => jstat.jStat.beta.cdf(x, alpha, beta);
