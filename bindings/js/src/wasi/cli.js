// `wasi:cli` for the vault client component: the environment the host chose (the vault's URL
// and settings, nothing inherited), no stdin, and stdout/stderr dropped, as the Rust host
// gives the same component an empty WASI context.

import { InputStream, OutputStream } from './io.js';

const config = { env: [] };

/** Sets the component's environment (called by the worker before the component runs). */
export function setEnvironment(pairs) {
  config.env = pairs;
}

export const environment = {
  getEnvironment: () => config.env,
  getArguments: () => [],
  initialCwd: () => undefined,
};

export class ComponentExit extends Error {
  constructor(code) {
    super(`the component exited with status ${code}`);
    this.exitError = true;
    this.code = code;
  }
}

export const exit = {
  exit(status) {
    throw new ComponentExit(status.tag === 'ok' ? 0 : 1);
  },
};

export const stdin = { getStdin: () => new InputStream() };
export const stdout = { getStdout: () => new OutputStream() };
export const stderr = { getStderr: () => new OutputStream() };

class TerminalInput {}
class TerminalOutput {}
export const terminalInput = { TerminalInput };
export const terminalOutput = { TerminalOutput };
export const terminalStdin = { getTerminalStdin: () => undefined };
export const terminalStdout = { getTerminalStdout: () => undefined };
export const terminalStderr = { getTerminalStderr: () => undefined };
