/** The part of jstat the advisor uses (the package ships no type declarations). */
declare module 'jstat' {
  const jstat: { jStat: { beta: { cdf(x: number, alpha: number, beta: number): number } } };
  export default jstat;
}
